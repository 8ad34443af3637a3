#include "common/tls.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/client_interceptor.h"

namespace conductor {
namespace {

constexpr char kPublicServicePrefix[] = "/conductor.v1.TableOps/";
constexpr char kBearerPrefix[] = "Bearer ";

// Methods every caller may use: health probes and reflection.
bool IsOpenMethod(absl::string_view path) {
  return absl::StartsWith(path, "/grpc.health.v1.Health/") ||
         absl::StartsWith(path, "/grpc.reflection.");
}

absl::string_view SliceView(const grpc_slice& slice) {
  return absl::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                           GRPC_SLICE_LENGTH(slice));
}

void ProcessAuthMetadata(void* state, grpc_auth_context* context, const grpc_metadata* md,
                         size_t num_md, grpc_process_auth_metadata_done_cb done, void* user_data) {
  const auto* security = static_cast<const ServerSecurity*>(state);
  absl::string_view path, authorization, internal_token;
  for (size_t i = 0; i < num_md; ++i) {
    absl::string_view key = SliceView(md[i].key);
    if (key == ":path") {
      path = SliceView(md[i].value);
    } else if (key == kAuthorizationHeader) {
      authorization = SliceView(md[i].value);
    } else if (key == kInternalTokenHeader) {
      internal_token = SliceView(md[i].value);
    }
  }
  bool peer_verified = context != nullptr && grpc_auth_context_peer_is_authenticated(context);
  if (security->public_checked_in_service && absl::StartsWith(path, kPublicServicePrefix)) {
    // conductor/table_ops_auth.h decides, with an ErrorInfo in its answer.
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  grpc::Status status = CheckAccess(*security, path, authorization, internal_token, peer_verified);
  done(user_data, nullptr, 0, nullptr, 0, static_cast<grpc_status_code>(status.error_code()),
       status.ok() ? nullptr : status.error_message().c_str());
}

void DestroyState(void* state) { delete static_cast<ServerSecurity*>(state); }

// Server credentials built on gRPC core, so that one auth metadata processor
// (the per-method rules) works on plaintext ports too; grpc++'s
// InsecureServerCredentials() does not take one.
class ConductorServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit ConductorServerCredentials(ServerSecurity security) : security_(std::move(security)) {}

  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
    // The rules of ServerSecurity are the processor; nothing else is taken.
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    grpc_server_credentials* creds = nullptr;
    if (security_.tls.tls()) {
      grpc_ssl_pem_key_cert_pair pair{security_.tls.key_pem.c_str(),
                                      security_.tls.cert_pem.c_str()};
      creds = grpc_ssl_server_credentials_create_ex(
          security_.tls.mtls() ? security_.tls.ca_pem.c_str() : nullptr, &pair, 1,
          security_.tls.mtls() ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
          nullptr);
    } else {
      creds = grpc_insecure_server_credentials_create();
    }
    if (!security_.public_token.empty() || security_.internal_auth()) {
      grpc_auth_metadata_processor processor{ProcessAuthMetadata, DestroyState,
                                             new ServerSecurity(security_)};
      grpc_server_credentials_set_auth_metadata_processor(creds, processor);
    }
    int port = grpc_server_add_http2_port(server, addr.c_str(), creds);
    grpc_server_credentials_release(creds);
    return port;
  }

  ServerSecurity security_;
};

// Adds fixed metadata (tokens) to every call of a channel.
class MetadataInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetadataInterceptor(const std::vector<std::pair<std::string, std::string>>* metadata)
      : metadata_(metadata) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      auto* md = methods->GetSendInitialMetadata();
      for (const auto& [key, value] : *metadata_) md->emplace(key, value);
    }
    methods->Proceed();
  }

 private:
  const std::vector<std::pair<std::string, std::string>>* metadata_;
};

class MetadataInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit MetadataInterceptorFactory(std::vector<std::pair<std::string, std::string>> metadata)
      : metadata_(std::move(metadata)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new MetadataInterceptor(&metadata_);
  }

 private:
  const std::vector<std::pair<std::string, std::string>> metadata_;
};

std::mutex default_mu;
ClientSecurity* default_security = nullptr;
// SetClientSecurityFor's entries (never freed: channels may refer to them).
auto* const per_address_security = new std::map<std::string, const ClientSecurity*>;

}  // namespace

absl::StatusOr<std::string> ReadSecretFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot read \"", path, "\" (missing or not readable)"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string contents = buffer.str();
  if (contents.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": \"", path, "\" is empty"));
  }
  return contents;
}

absl::StatusOr<std::string> LoadToken(const std::string& file, absl::string_view flag,
                                      absl::string_view env) {
  std::string token;
  if (!file.empty()) {
    auto contents = ReadSecretFile(file, flag);
    if (!contents.ok()) return contents.status();
    token = std::string(absl::StripAsciiWhitespace(*contents));
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": \"", file, "\" holds only whitespace"));
    }
  } else if (const char* value = std::getenv(std::string(env).c_str()); value != nullptr) {
    token = std::string(absl::StripAsciiWhitespace(value));
    if (token.empty() && value[0] != '\0') {
      return absl::InvalidArgumentError(absl::StrCat(env, " holds only whitespace"));
    }
  }
  for (char c : token) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.empty() ? std::string(env) : absl::StrCat("--", flag),
                       ": the token must be printable ASCII (it travels as gRPC metadata)"));
    }
  }
  return token;
}

namespace {

absl::StatusOr<TlsMaterial> LoadTls(const TlsFiles& files, bool server) {
  TlsMaterial material;
  if (files.cert.empty() != files.key.empty()) {
    return absl::InvalidArgumentError(
        files.cert.empty() ? "--tls_key needs --tls_cert (the certificate it goes with)"
                           : "--tls_cert needs --tls_key (its private key)");
  }
  if (server && !files.ca.empty() && files.cert.empty()) {
    return absl::InvalidArgumentError(
        "--tls_ca needs --tls_cert and --tls_key (mutual TLS: this process serves TLS with its "
        "own certificate)");
  }
  if (!files.cert.empty()) {
    auto cert = ReadSecretFile(files.cert, "tls_cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadSecretFile(files.key, "tls_key");
    if (!key.ok()) return key.status();
    if (!absl::StrContains(*cert, "-----BEGIN CERTIFICATE-----")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls_cert: \"", files.cert, "\" is not a PEM certificate"));
    }
    if (!absl::StrContains(*key, "PRIVATE KEY-----")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls_key: \"", files.key, "\" is not a PEM private key"));
    }
    material.cert_pem = *std::move(cert);
    material.key_pem = *std::move(key);
  }
  if (!files.ca.empty()) {
    auto ca = ReadSecretFile(files.ca, "tls_ca");
    if (!ca.ok()) return ca.status();
    if (!absl::StrContains(*ca, "-----BEGIN CERTIFICATE-----")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls_ca: \"", files.ca, "\" is not a PEM certificate"));
    }
    material.ca_pem = *std::move(ca);
  }
  return material;
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadServerTls(const TlsFiles& files) { return LoadTls(files, true); }

absl::StatusOr<TlsMaterial> LoadClientTls(const TlsFiles& files) { return LoadTls(files, false); }

grpc::Status CheckAccess(const ServerSecurity& security, absl::string_view path,
                         absl::string_view authorization, absl::string_view internal_token,
                         bool peer_verified) {
  if (IsOpenMethod(path)) return grpc::Status::OK;
  const bool internal_ok = (security.tls.mtls() && peer_verified) ||
                           (!security.internal_token.empty() && !internal_token.empty() &&
                            ConstantTimeEquals(internal_token, security.internal_token));
  const bool has_bearer = absl::StartsWith(authorization, kBearerPrefix);
  const absl::string_view bearer =
      has_bearer ? absl::StripAsciiWhitespace(authorization.substr(sizeof(kBearerPrefix) - 1))
                 : absl::string_view();
  const bool public_ok = !security.public_token.empty() && has_bearer &&
                         ConstantTimeEquals(bearer, security.public_token);
  if (absl::StartsWith(path, kPublicServicePrefix)) {
    if (security.public_token.empty() || public_ok || internal_ok) return grpc::Status::OK;
    if (authorization.empty()) {
      return grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          "this conductor requires a bearer token: send the metadata \"authorization: Bearer "
          "<token>\" (conductorctl --token_file=FILE or env CONDUCTOR_AUTH_TOKEN; grpcurl -H "
          "'authorization: Bearer <token>')");
    }
    if (!has_bearer) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "the authorization metadata must read \"Bearer <token>\"");
    }
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the bearer token is not valid for this conductor");
  }
  // An internal service.
  if (!security.internal_auth() || internal_ok) return grpc::Status::OK;
  if (public_ok) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat(path,
                     " is internal: the public token does not give access to it (it needs a "
                     "client certificate of the cluster CA or the internal token)"));
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      absl::StrCat(path,
                                   " is internal: it needs a client certificate signed by the "
                                   "cluster CA (mutual TLS) or the internal token (",
                                   kInternalTokenHeader, " metadata)"));
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Walks the longer input entirely; only the lengths leak.
  size_t n = a.size() > b.size() ? a.size() : b.size();
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = diff | (x ^ y);
  }
  return diff == 0;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const ServerSecurity& security) {
  if (!security.tls.tls() && security.public_token.empty() && !security.internal_auth()) {
    return grpc::InsecureServerCredentials();
  }
  return std::make_shared<ConductorServerCredentials>(security);
}

std::string DescribeSecurity(const ServerSecurity& security) {
  std::string text = security.tls.mtls() ? "mutual TLS" : security.tls.tls() ? "TLS" : "plaintext";
  if (!security.public_token.empty()) absl::StrAppend(&text, ", public token required");
  if (!security.internal_token.empty()) absl::StrAppend(&text, ", internal token");
  return text;
}

ClientSecurity InternalClientSecurity(const ServerSecurity& server) {
  ClientSecurity client;
  if (server.tls.tls()) {
    client.tls.ca_pem = server.tls.ca_pem;
    // The own cert is presented only under mTLS (a CA was given); without
    // a CA, clients verify the server against the system roots.
    if (server.tls.mtls()) {
      client.tls.cert_pem = server.tls.cert_pem;
      client.tls.key_pem = server.tls.key_pem;
    }
  }
  if (!server.internal_token.empty()) {
    client.metadata.emplace_back(kInternalTokenHeader, server.internal_token);
  }
  return client;
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const ClientSecurity& security) {
  if (!security.tls_enabled()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = security.tls.ca_pem;
  options.pem_private_key = security.tls.key_pem;
  options.pem_cert_chain = security.tls.cert_pem;
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const grpc::ChannelArguments& args,
                                           const ClientSecurity& security) {
  grpc::ChannelArguments channel_args = args;
  if (security.tls_enabled() && !security.server_name.empty()) {
    channel_args.SetSslTargetNameOverride(security.server_name);
  }
  auto credentials = MakeChannelCredentials(security);
  if (security.metadata.empty()) {
    return grpc::CreateCustomChannel(address, credentials, channel_args);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<MetadataInterceptorFactory>(security.metadata));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, credentials, channel_args,
                                                                 std::move(factories));
}

void SetDefaultClientSecurity(ClientSecurity security) {
  std::lock_guard<std::mutex> lock(default_mu);
  // Kept for the life of the process: channels made earlier may refer to it.
  default_security = new ClientSecurity(std::move(security));
}

const ClientSecurity& DefaultClientSecurity() {
  static const ClientSecurity* plaintext = new ClientSecurity;
  std::lock_guard<std::mutex> lock(default_mu);
  return default_security != nullptr ? *default_security : *plaintext;
}

void SetClientSecurityFor(const std::string& address, ClientSecurity security) {
  std::lock_guard<std::mutex> lock(default_mu);
  // Kept for the life of the process, as the default.
  (*per_address_security)[address] = new ClientSecurity(std::move(security));
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const grpc::ChannelArguments& args) {
  const ClientSecurity* for_address = nullptr;
  {
    std::lock_guard<std::mutex> lock(default_mu);
    auto it = per_address_security->find(address);
    if (it != per_address_security->end()) for_address = it->second;
  }
  return MakeChannel(address, args,
                     for_address != nullptr ? *for_address : DefaultClientSecurity());
}

}  // namespace conductor
