// TLS and authentication for every gRPC port and channel (docs/security.md).
//
// One place builds the credentials: server credentials from the binaries'
// --tls_cert/--tls_key/--tls_ca (+ tokens), channel credentials for the
// clients the binaries create, and MakeChannel(), which every call site uses
// instead of its own grpc::CreateCustomChannel(…, InsecureChannelCredentials()).
//
// Access rules on a server (ServerSecurity), decided per method before the
// method runs, by an auth metadata processor installed on the port:
//   - grpc.health.v1.Health and grpc.reflection.*: always open (probes).
//   - conductor.v1.TableOps (public): when a public token is configured, the
//     call must carry `authorization: Bearer <token>` (or internal
//     credentials), else UNAUTHENTICATED.
//   - everything else (internal services, storage.v1.Storage): when internal
//     auth is configured (a CA, i.e. mTLS, and/or an internal token), the
//     call must come with a client certificate verified against the CA, or
//     carry `x-conductor-internal-token: <token>`. Otherwise UNAUTHENTICATED,
//     or PERMISSION_DENIED when the caller presented a valid public token.
// Plaintext with no token is the default and lets every call through.
#ifndef CONDUCTOR_COMMON_TLS_H_
#define CONDUCTOR_COMMON_TLS_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace conductor {

// Metadata keys.
inline constexpr char kAuthorizationHeader[] = "authorization";
inline constexpr char kInternalTokenHeader[] = "x-conductor-internal-token";
// Environment variables read when the matching *_file flag is not given.
inline constexpr char kAuthTokenEnv[] = "CONDUCTOR_AUTH_TOKEN";
inline constexpr char kInternalTokenEnv[] = "CONDUCTOR_INTERNAL_TOKEN";

// File paths as given on a command line; empty = not given.
struct TlsFiles {
  std::string cert;
  std::string key;
  std::string ca;
};

// PEM contents loaded from TlsFiles.
struct TlsMaterial {
  std::string cert_pem;
  std::string key_pem;
  std::string ca_pem;
  bool tls() const { return !cert_pem.empty(); }
  bool mtls() const { return tls() && !ca_pem.empty(); }
};

// Reads a whole file; an error naming `flag` when it is missing or empty.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path, absl::string_view flag);

// A token from `file` (flag `flag`), else from the environment variable
// `env`; "" when neither is set. Surrounding whitespace is removed; an
// empty token or an unreadable file is an error.
absl::StatusOr<std::string> LoadToken(const std::string& file, absl::string_view flag,
                                      absl::string_view env);

// Server side: cert and key both or neither; a CA only with them. Reads the
// files. INVALID_ARGUMENT with a message naming the flag otherwise.
absl::StatusOr<TlsMaterial> LoadServerTls(const TlsFiles& files);

// Client side: a CA alone (server verification) is fine; cert and key both
// or neither.
absl::StatusOr<TlsMaterial> LoadClientTls(const TlsFiles& files);

// Equality that takes the same time wherever the first difference is.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

struct ServerSecurity {
  TlsMaterial tls;  // no cert: plaintext
  // Required on conductor.v1.TableOps when set.
  std::string public_token;
  // Accepted on internal services when set (in addition to a verified
  // client certificate under mTLS).
  std::string internal_token;
  // The public token is checked by the TableOps service itself
  // (conductor/table_ops_auth.h, which answers with an ErrorInfo), so the
  // port's processor lets conductor.v1.TableOps calls through.
  bool public_checked_in_service = false;

  // Internal services are guarded (mTLS or an internal token).
  bool internal_auth() const { return tls.mtls() || !internal_token.empty(); }
};

// The access rules for one call: OK, or UNAUTHENTICATED / PERMISSION_DENIED
// with a message saying what to send. `path` is "/package.Service/Method";
// `authorization` and `internal_token` the metadata values ("" if absent);
// `peer_verified` whether a client certificate was verified.
grpc::Status CheckAccess(const ServerSecurity& security, absl::string_view path,
                         absl::string_view authorization, absl::string_view internal_token,
                         bool peer_verified);

// Credentials for a listening port. With a CA, client certificates are
// requested and verified when presented, but not required: health probes and
// public clients connect without one, and the per-method rules above decide.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const ServerSecurity& security);

// "plaintext", "TLS", "mutual TLS", plus the tokens in force, for logs.
std::string DescribeSecurity(const ServerSecurity& security);

struct ClientSecurity {
  TlsMaterial tls;  // ca_pem set: TLS, verifying the server; cert+key: mTLS
  // Sent as metadata on every call (e.g. authorization: Bearer …).
  std::vector<std::pair<std::string, std::string>> metadata;
  // Name checked against the server certificate instead of the address's
  // host (GRPC_SSL_TARGET_NAME_OVERRIDE_ARG); empty: the host.
  std::string server_name;

  bool tls_enabled() const { return !tls.ca_pem.empty() || !tls.cert_pem.empty(); }
};

// The client security of a server binary's own internal calls (conductor →
// storage, worker → conductor, worker → storage): same cert/key, the CA for
// the server, and the internal token as metadata.
ClientSecurity InternalClientSecurity(const ServerSecurity& server);

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ClientSecurity& security);

// A channel to `address` with `args` and `security`.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const grpc::ChannelArguments& args,
                                           const ClientSecurity& security);

// Process-wide client security used by MakeChannel(address, args): set once
// in main() before any channel is made; plaintext until then.
void SetDefaultClientSecurity(ClientSecurity security);
// The client security MakeChannel(address, args) uses for exactly `address`
// instead of the default (e.g. a queue worker that reaches a TLS conductor
// with --conductor_tls_ca while the storage nodes stay plaintext). Set in
// main() before any channel is made.
void SetClientSecurityFor(const std::string& address, ClientSecurity security);
const ClientSecurity& DefaultClientSecurity();
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const grpc::ChannelArguments& args);

}  // namespace conductor

#endif  // CONDUCTOR_COMMON_TLS_H_
