#include "common/security_flags.h"

#include <string>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate (chain) to serve TLS with; needs --tls_key. Empty: plaintext");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificate(s): mutual TLS. Client certificates are verified against it, "
          "and this process presents --tls_cert/--tls_key on its own calls and verifies "
          "servers against it. Needs --tls_cert and --tls_key");
ABSL_FLAG(std::string, internal_token_file, "",
          "file holding the cluster's internal token, sent and accepted on internal calls "
          "(alternative: env CONDUCTOR_INTERNAL_TOKEN)");

namespace conductor {

absl::StatusOr<ServerSecurity> SecurityFromFlags() {
  ServerSecurity security;
  TlsFiles files{absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                 absl::GetFlag(FLAGS_tls_ca)};
  auto tls = LoadServerTls(files);
  if (!tls.ok()) return tls.status();
  security.tls = *std::move(tls);
  auto internal =
      LoadToken(absl::GetFlag(FLAGS_internal_token_file), "internal_token_file", kInternalTokenEnv);
  if (!internal.ok()) return internal.status();
  security.internal_token = *std::move(internal);
  SetDefaultClientSecurity(InternalClientSecurity(security));
  return security;
}

}  // namespace conductor
