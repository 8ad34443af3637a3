// TLS, mutual TLS and tokens end to end (docs/security.md): real processes,
// certificates made with openssl in the test.
//
//   - TLS: a client trusting the CA runs CREATE/INSERT/SELECT; a client
//     trusting another CA, and a plaintext client, get UNAVAILABLE.
//   - mTLS cluster (conductor, 3 nodes, a worker building an index) with a
//     bearer token: missing / wrong token UNAUTHENTICATED (ErrorInfo reason
//     UNAUTHENTICATED), right token OK; conductorctl with --tls_ca and the
//     token from --token_file or CONDUCTOR_AUTH_TOKEN;
//     a public client (token, no client certificate) is refused on the
//     internal services (JobQueue Lease: PERMISSION_DENIED; Storage on a
//     node: UNAUTHENTICATED); a client certificate of the CA opens them.
//   - Plaintext with tokens: the internal token carries the worker's and
//     the conductor's internal calls; the public token alone does not.
//   - Bad flags exit with status 2 and a message naming the flag; a key that
//     does not match its certificate fails the start with status 1.
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/tls.h"
#include "conductor/internal/v1/job_queue.grpc.pb.h"
#include "conductor/v1/table_ops.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "storage/v1/storage.grpc.pb.h"
#include "tests/harness/cluster.h"
#include "tests/harness/process.h"

namespace conductor::testing {
namespace {

constexpr char kPublicToken[] = "public-token-0123456789";
constexpr char kInternalToken[] = "internal-token-9876543210";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
}

// Runs a shell command; its exit status (-1 when it could not run).
int Shell(const std::string& command) {
  int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// Certificates for the whole test: a CA, a server certificate (SAN
// 127.0.0.1 and localhost; also usable as a client certificate, as the
// processes present it on their own calls), a client certificate of the
// same CA, and a second, unrelated CA with a client certificate of its own.
struct Certs {
  std::string dir;
  std::string ca, server_cert, server_key, client_cert, client_key;
  std::string other_ca, other_cert, other_key;
  std::string public_token_file, internal_token_file, wrong_token_file;
};

absl::StatusOr<Certs> MakeCerts() {
  Certs c;
  c.dir = MakeTempDir("certs");
  const std::string d = c.dir;
  auto run = [&](const std::string& command) -> absl::Status {
    std::string full = absl::StrCat("cd '", d, "' && ", command, " >>openssl.log 2>&1");
    if (Shell(full) != 0) {
      return absl::InternalError(
          absl::StrCat("openssl failed: ", command, "\n", ReadFile(d + "/openssl.log")));
    }
    return absl::OkStatus();
  };
  auto make_ca = [&](const std::string& name, const std::string& cn) {
    return run(absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -keyout ", name,
                            ".key -out ", name, ".pem -days 2 -subj '/CN=", cn,
                            "' -addext basicConstraints=critical,CA:TRUE"
                            " -addext keyUsage=critical,keyCertSign,cRLSign"));
  };
  auto make_leaf = [&](const std::string& name, const std::string& ca, const std::string& cn,
                       const std::string& ext) -> absl::Status {
    WriteFile(absl::StrCat(d, "/", name, ".ext"), ext);
    if (auto s = run(absl::StrCat("openssl req -newkey rsa:2048 -nodes -keyout ", name,
                                  ".key -out ", name, ".csr -subj '/CN=", cn, "'"));
        !s.ok()) {
      return s;
    }
    return run(absl::StrCat("openssl x509 -req -in ", name, ".csr -CA ", ca, ".pem -CAkey ", ca,
                            ".key -CAcreateserial -out ", name, ".pem -days 2 -extfile ", name,
                            ".ext"));
  };
  if (auto s = make_ca("ca", "Conductor Test CA"); !s.ok()) return s;
  if (auto s = make_ca("other-ca", "Unrelated Test CA"); !s.ok()) return s;
  if (auto s = make_leaf("server", "ca", "conductor-cluster",
                         "basicConstraints=CA:FALSE\n"
                         "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                         "extendedKeyUsage=serverAuth,clientAuth\n");
      !s.ok()) {
    return s;
  }
  if (auto s = make_leaf("client", "ca", "test-client",
                         "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
      !s.ok()) {
    return s;
  }
  if (auto s = make_leaf("other", "other-ca", "intruder",
                         "basicConstraints=CA:FALSE\n"
                         "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                         "extendedKeyUsage=serverAuth,clientAuth\n");
      !s.ok()) {
    return s;
  }
  c.ca = d + "/ca.pem";
  c.server_cert = d + "/server.pem";
  c.server_key = d + "/server.key";
  c.client_cert = d + "/client.pem";
  c.client_key = d + "/client.key";
  c.other_ca = d + "/other-ca.pem";
  c.other_cert = d + "/other.pem";
  c.other_key = d + "/other.key";
  c.public_token_file = d + "/public.token";
  c.internal_token_file = d + "/internal.token";
  c.wrong_token_file = d + "/wrong.token";
  WriteFile(c.public_token_file, absl::StrCat(kPublicToken, "\n"));
  WriteFile(c.internal_token_file, kInternalToken);
  WriteFile(c.wrong_token_file, "not-the-token");
  return c;
}

ClientSecurity Tls(const std::string& ca, const std::string& cert = "",
                   const std::string& key = "") {
  ClientSecurity security;
  security.tls.ca_pem = ReadFile(ca);
  if (!cert.empty()) {
    security.tls.cert_pem = ReadFile(cert);
    security.tls.key_pem = ReadFile(key);
  }
  return security;
}

ClientSecurity WithMetadata(ClientSecurity security, const std::string& key,
                            const std::string& value) {
  security.metadata.emplace_back(key, value);
  return security;
}

ClientSecurity WithBearer(ClientSecurity security, const std::string& token) {
  return WithMetadata(std::move(security), kAuthorizationHeader, absl::StrCat("Bearer ", token));
}

std::unique_ptr<v1::TableOps::Stub> OpsStub(const std::string& address,
                                            const ClientSecurity& security) {
  return v1::TableOps::NewStub(MakeChannel(address, grpc::ChannelArguments(), security));
}

template <typename Context>
void SetDeadline(Context* context, int seconds = 15) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

grpc::Status Sql(v1::TableOps::Stub& stub, const std::string& sql,
                 v1::ExecuteResponse* response = nullptr) {
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::ExecuteRequest request;
  request.set_sql(sql);
  v1::ExecuteResponse ignored;
  return stub.Execute(&context, request, response != nullptr ? response : &ignored);
}

grpc::Status ListTables(v1::TableOps::Stub& stub) {
  grpc::ClientContext context;
  SetDeadline(&context, 5);
  v1::ListTablesResponse response;
  return stub.ListTables(&context, v1::ListTablesRequest(), &response);
}

// grpc.health.v1.Health/Check for the whole server (an empty request).
grpc::Status HealthCheck(const std::string& address, const ClientSecurity& security) {
  auto channel = MakeChannel(address, grpc::ChannelArguments(), security);
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  SetDeadline(&context, 5);
  grpc::CompletionQueue cq;
  // HealthCheckRequest{service: ""}, serialized by hand (field 1, length 0):
  // a default ByteBuffer would send no message at all.
  grpc::Slice bytes(std::string("\x0a\x00", 2));
  grpc::ByteBuffer request(&bytes, 1), response;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  return status;
}

grpc::Status Lease(const std::string& address, const ClientSecurity& security) {
  auto stub = internal::v1::JobQueueService::NewStub(
      MakeChannel(address, grpc::ChannelArguments(), security));
  grpc::ClientContext context;
  SetDeadline(&context, 5);
  internal::v1::LeaseRequest request;
  request.set_worker_id("intruder");
  request.set_wait_ms(0);
  internal::v1::LeaseResponse response;
  return stub->Lease(&context, request, &response);
}

grpc::Status NodeInfo(const std::string& address, const ClientSecurity& security,
                      std::string* node_id = nullptr) {
  auto stub =
      storage::v1::Storage::NewStub(MakeChannel(address, grpc::ChannelArguments(), security));
  grpc::ClientContext context;
  SetDeadline(&context, 5);
  storage::v1::GetNodeInfoResponse response;
  grpc::Status status = stub->GetNodeInfo(&context, storage::v1::GetNodeInfoRequest(), &response);
  if (node_id != nullptr) *node_id = response.node_id();
  return status;
}

grpc::Status ExecuteOnNode(const std::string& address, const ClientSecurity& security) {
  auto stub =
      storage::v1::Storage::NewStub(MakeChannel(address, grpc::ChannelArguments(), security));
  grpc::ClientContext context;
  SetDeadline(&context, 5);
  storage::v1::ExecuteBatchRequest request;
  storage::v1::ExecuteBatchResponse response;
  return stub->ExecuteBatch(&context, request, &response);
}

// A CREATE / INSERT / SELECT round trip through `stub`.
void ExpectCrud(v1::TableOps::Stub& stub, const std::string& table) {
  grpc::Status status = Sql(stub, absl::StrCat("CREATE TABLE ", table,
                                               " (id INTEGER PRIMARY KEY, name TEXT) "
                                               "/* SHARDS=4 */"));
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  status = Sql(stub, absl::StrCat("INSERT INTO ", table,
                                  " (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')"));
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::ExecuteResponse response;
  status = Sql(stub, absl::StrCat("SELECT id, name FROM ", table, " ORDER BY id"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.result_sets_size(), 1);
  const auto& rows = response.result_sets(0).rows();
  ASSERT_EQ(rows.size(), 4);
  EXPECT_EQ(rows[0].values(1).text(), "a");
  EXPECT_EQ(rows[3].values(0).integer(), 4);
}

// The one index of `table` leaves `building` and is `ready` (60 s at most).
void ExpectIndexReady(TestCluster& cluster, const std::string& table) {
  std::string index_status;
  for (absl::Time give_up = absl::Now() + absl::Seconds(60); absl::Now() < give_up;) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::ListIndexesRequest request;
    request.set_table(table);
    v1::ListIndexesResponse response;
    grpc::Status status = cluster.ops().ListIndexes(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.indexes_size(), 1);
    index_status = response.indexes(0).status();
    if (index_status != "building") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(index_status, "ready") << cluster.worker_process(0)->LogTail();
}

void ExpectCode(const grpc::Status& status, grpc::StatusCode code, const std::string& what) {
  EXPECT_EQ(status.error_code(), code) << what << ": " << status.error_message();
}

void ExpectOk(const grpc::Status& status, const std::string& what) {
  EXPECT_TRUE(status.ok()) << what << ": " << status.error_code() << " " << status.error_message();
}

class SecurityIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto certs = MakeCerts();
    if (!certs.ok()) {
      setup_error_ = new std::string(certs.status().ToString());
      return;
    }
    certs_ = new Certs(*std::move(certs));
  }
  void SetUp() override {
    ASSERT_EQ(setup_error_, nullptr) << *setup_error_;
    ASSERT_NE(certs_, nullptr);
  }
  static const Certs& certs() { return *certs_; }

  std::vector<std::string> MtlsFlags() const {
    return {"--tls_cert=" + certs().server_cert, "--tls_key=" + certs().server_key,
            "--tls_ca=" + certs().ca};
  }

  static Certs* certs_;
  static std::string* setup_error_;
};

Certs* SecurityIntegrationTest::certs_ = nullptr;
std::string* SecurityIntegrationTest::setup_error_ = nullptr;

// TLS on the conductor's port (nodes on plaintext loopback): a client that
// trusts the CA works end to end; the wrong CA and plaintext are refused.
TEST_F(SecurityIntegrationTest, TlsHandshakeAndCrud) {
  TestCluster::Options options;
  options.extra_conductor_flags = {"--tls_cert=" + certs().server_cert,
                                   "--tls_key=" + certs().server_key,
                                   "--health_listen=127.0.0.1:0"};
  options.client_security = Tls(certs().ca);
  // A worker reaches the TLS conductor with --conductor_tls_ca (the nodes
  // stay plaintext): an index build finishes.
  options.workers = 1;
  options.extra_worker_flags = {"--conductor_tls_ca=" + certs().ca};
  auto cluster = TestCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string address = (*cluster)->conductor_address();

  ASSERT_NO_FATAL_FAILURE(ExpectCrud((*cluster)->ops(), "tls_items"));
  ExpectOk(Sql((*cluster)->ops(), "CREATE INDEX tls_items_name ON tls_items (name)"),
           "CREATE INDEX");
  ASSERT_NO_FATAL_FAILURE(ExpectIndexReady(**cluster, "tls_items"));
  // The name in the certificate (SAN localhost) checked instead of the IP.
  ClientSecurity by_name = Tls(certs().ca);
  by_name.server_name = "localhost";
  ExpectOk(ListTables(*OpsStub(address, by_name)), "ListTables");
  ExpectOk(HealthCheck(address, Tls(certs().ca)), "health check");

  // A client that trusts another CA: the handshake fails.
  ExpectCode(ListTables(*OpsStub(address, Tls(certs().other_ca))), grpc::StatusCode::UNAVAILABLE,
             "client trusting the wrong CA");
  // A name the certificate does not hold.
  ClientSecurity wrong_name = Tls(certs().ca);
  wrong_name.server_name = "not-in-the-cert.example";
  ExpectCode(ListTables(*OpsStub(address, wrong_name)), grpc::StatusCode::UNAVAILABLE,
             "client checking a name the certificate lacks");
  // Plaintext to a TLS port.
  ExpectCode(ListTables(*OpsStub(address, ClientSecurity())), grpc::StatusCode::UNAVAILABLE,
             "plaintext client on a TLS port");
  ExpectCode(HealthCheck(address, ClientSecurity()), grpc::StatusCode::UNAVAILABLE,
             "plaintext health check on a TLS port");

  // --health_listen: a plaintext port for probes, with health and nothing else.
  const std::string log = ReadFile((*cluster)->root() + "/conductor.log");
  const std::string marker = "serving grpc.health.v1 only, plaintext, on ";
  const size_t at = log.find(marker);
  ASSERT_NE(at, std::string::npos) << "no health port in the conductor's log:\n" << log;
  const std::string health_address =
      log.substr(at + marker.size(), log.find('\n', at) - at - marker.size());
  ExpectOk(HealthCheck(health_address, ClientSecurity()), "plaintext health check, health port");
  ExpectCode(ListTables(*OpsStub(health_address, ClientSecurity())),
             grpc::StatusCode::UNIMPLEMENTED, "TableOps on the health port");
  ExpectCode(Lease(health_address, ClientSecurity()), grpc::StatusCode::UNIMPLEMENTED,
             "an internal service on the health port");
}

// Every process on mutual TLS, a public bearer token on TableOps.
TEST_F(SecurityIntegrationTest, MtlsClusterWithTokenBuildsAnIndexAndRefusesPublicClients) {
  TestCluster::Options options;
  options.extra_storage_node_flags = MtlsFlags();
  options.extra_conductor_flags = MtlsFlags();
  options.extra_conductor_flags.push_back("--auth_token_file=" + certs().public_token_file);
  options.extra_conductor_flags.push_back("--job_lease_s=2");
  options.extra_worker_flags = MtlsFlags();
  options.workers = 1;
  // The public client: trusts the CA, presents no certificate, sends the token.
  const ClientSecurity public_client = WithBearer(Tls(certs().ca), kPublicToken);
  options.client_security = public_client;
  auto started = TestCluster::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  TestCluster& cluster = **started;
  const std::string address = cluster.conductor_address();

  // A full round trip, then an index built by the worker (worker →
  // conductor and worker → nodes on mTLS).
  ASSERT_NO_FATAL_FAILURE(ExpectCrud(cluster.ops(), "mtls_items"));
  grpc::Status status = Sql(cluster.ops(), "CREATE INDEX mtls_items_name ON mtls_items (name)");
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(ExpectIndexReady(cluster, "mtls_items"));
  v1::ExecuteResponse found;
  status = Sql(cluster.ops(), "SELECT id FROM mtls_items WHERE name = 'c'", &found);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(found.result_sets_size(), 1);
  ASSERT_EQ(found.result_sets(0).rows_size(), 1);
  EXPECT_EQ(found.result_sets(0).rows(0).values(0).integer(), 3);

  // Tokens on TableOps: refusals carry ErrorInfo reason UNAUTHENTICATED.
  status = ListTables(*OpsStub(address, Tls(certs().ca)));
  ExpectCode(status, grpc::StatusCode::UNAUTHENTICATED, "no token");
  EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), "UNAUTHENTICATED");
  EXPECT_TRUE(absl::StrContains(status.error_message(), "authorization: Bearer"))
      << status.error_message();
  status = Sql(*OpsStub(address, Tls(certs().ca)), "SELECT 1 FROM mtls_items");
  ExpectCode(status, grpc::StatusCode::UNAUTHENTICATED, "Execute without a token");
  EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), "UNAUTHENTICATED");
  status = ListTables(*OpsStub(address, WithBearer(Tls(certs().ca), "not-the-token")));
  ExpectCode(status, grpc::StatusCode::UNAUTHENTICATED, "wrong token");
  EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), "UNAUTHENTICATED");
  EXPECT_TRUE(absl::StrContains(status.error_message(), "not valid")) << status.error_message();
  ExpectCode(
      ListTables(*OpsStub(address, WithMetadata(Tls(certs().ca), "authorization", kPublicToken))),
      grpc::StatusCode::UNAUTHENTICATED, "token without the Bearer scheme");
  ExpectOk(ListTables(*OpsStub(address, public_client)), "ListTables");
  // Health stays open to anyone who completes the handshake.
  ExpectOk(HealthCheck(address, Tls(certs().ca)), "health check");

  // Internal services refuse the public client.
  status = Lease(address, public_client);
  ExpectCode(status, grpc::StatusCode::PERMISSION_DENIED, "JobQueue Lease with the public token");
  ExpectCode(Lease(address, Tls(certs().ca)), grpc::StatusCode::UNAUTHENTICATED,
             "JobQueue Lease without credentials");
  for (int i = 0; i < cluster.node_count(); ++i) {
    ExpectCode(ExecuteOnNode(cluster.node_address(i), public_client),
               grpc::StatusCode::UNAUTHENTICATED, "Storage ExecuteBatch with the public token");
    ExpectCode(NodeInfo(cluster.node_address(i), Tls(certs().ca)),
               grpc::StatusCode::UNAUTHENTICATED, "Storage GetNodeInfo without credentials");
    ExpectOk(HealthCheck(cluster.node_address(i), Tls(certs().ca)), "health check");
  }
  // A client certificate of the cluster CA opens them (what the processes use).
  const ClientSecurity member = Tls(certs().ca, certs().client_cert, certs().client_key);
  std::string node_id;
  status = NodeInfo(cluster.node_address(0), member, &node_id);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(node_id, "node-1");
  ExpectOk(Lease(address, member), "Lease");
  // A certificate of another CA does not even complete the handshake.
  ExpectCode(
      NodeInfo(cluster.node_address(0), Tls(certs().ca, certs().other_cert, certs().other_key)),
      grpc::StatusCode::UNAVAILABLE, "client certificate of an unrelated CA");
  // Plaintext to an mTLS port.
  ExpectCode(NodeInfo(cluster.node_address(0), ClientSecurity()), grpc::StatusCode::UNAVAILABLE,
             "plaintext client on an mTLS node");

  // conductorctl over TLS with the token from a file, and without it.
  const std::string ctl = BinaryPath("client/conductorctl");
  const std::string out = cluster.root() + "/ctl.out";
  EXPECT_EQ(
      Shell(absl::StrCat(ctl, " --conductor=", address, " --tls_ca=", certs().ca,
                         " --token_file=", certs().public_token_file, " tables >", out, " 2>&1")),
      0)
      << ReadFile(out);
  EXPECT_TRUE(absl::StrContains(ReadFile(out), "mtls_items")) << ReadFile(out);
  EXPECT_EQ(Shell(absl::StrCat("env -u CONDUCTOR_AUTH_TOKEN ", ctl, " --conductor=", address,
                               " --tls_ca=", certs().ca, " tables >", out, " 2>&1")),
            1)
      << ReadFile(out);
  EXPECT_TRUE(absl::StrContains(ReadFile(out), "UNAUTHENTICATED")) << ReadFile(out);
  EXPECT_EQ(Shell(absl::StrCat("CONDUCTOR_AUTH_TOKEN=", kPublicToken, " ", ctl, " --conductor=",
                               address, " --tls_ca=", certs().ca, " tables >", out, " 2>&1")),
            0)
      << ReadFile(out);
  // A backup (an internal service) needs a client certificate from the CA.
  EXPECT_EQ(Shell(absl::StrCat(ctl, " --conductor=", address, " --tls_ca=", certs().ca,
                               " --token_file=", certs().public_token_file,
                               " backup --out=", cluster.root(), "/refused >", out, " 2>&1")),
            1);
  EXPECT_TRUE(absl::StrContains(ReadFile(out), "PERMISSION_DENIED")) << ReadFile(out);
  EXPECT_EQ(Shell(absl::StrCat(ctl, " --conductor=", address, " --tls_ca=", certs().ca,
                               " --tls_cert=", certs().client_cert, " --tls_key=",
                               certs().client_key, " --token_file=", certs().public_token_file,
                               " backup --out=", cluster.root(), "/taken >", out, " 2>&1")),
            0)
      << ReadFile(out);
  EXPECT_TRUE(absl::StrContains(ReadFile(out), "backup written to")) << ReadFile(out);
}

// Plaintext, but with tokens: the internal token carries the cluster's own
// calls (conductor → nodes, worker → conductor and nodes).
TEST_F(SecurityIntegrationTest, InternalTokenGuardsInternalServicesOnPlaintext) {
  const std::string internal = "--internal_token_file=" + certs().internal_token_file;
  TestCluster::Options options;
  options.extra_storage_node_flags = {internal};
  options.extra_conductor_flags = {internal, "--auth_token_file=" + certs().public_token_file,
                                   "--job_lease_s=2"};
  options.extra_worker_flags = {internal};
  options.workers = 1;
  const ClientSecurity public_client = WithBearer(ClientSecurity(), kPublicToken);
  options.client_security = public_client;
  auto started = TestCluster::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  TestCluster& cluster = **started;
  const std::string address = cluster.conductor_address();

  ASSERT_NO_FATAL_FAILURE(ExpectCrud(cluster.ops(), "plain_items"));
  grpc::Status status = Sql(cluster.ops(), "CREATE INDEX plain_items_name ON plain_items (name)");
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_NO_FATAL_FAILURE(ExpectIndexReady(cluster, "plain_items"));

  grpc::Status refused = ListTables(*OpsStub(address, ClientSecurity()));
  ExpectCode(refused, grpc::StatusCode::UNAUTHENTICATED, "no token");
  EXPECT_EQ(ErrorReason(FromGrpcStatus(refused)), "UNAUTHENTICATED");
  // The internal token opens TableOps too (internal credentials).
  ExpectOk(ListTables(*OpsStub(
               address, WithMetadata(ClientSecurity(), kInternalTokenHeader, kInternalToken))),
           "ListTables with the internal token");
  ExpectCode(ListTables(*OpsStub(address, WithBearer(ClientSecurity(), kInternalToken))),
             grpc::StatusCode::UNAUTHENTICATED, "the internal token as a bearer token");
  ExpectCode(Lease(address, public_client), grpc::StatusCode::PERMISSION_DENIED,
             "Lease with the public token");
  ExpectCode(Lease(address, ClientSecurity()), grpc::StatusCode::UNAUTHENTICATED,
             "Lease without credentials");
  const ClientSecurity wrong_internal =
      WithMetadata(ClientSecurity(), kInternalTokenHeader, "not-the-token");
  ExpectCode(Lease(address, wrong_internal), grpc::StatusCode::UNAUTHENTICATED,
             "Lease with a wrong internal token");
  const ClientSecurity internal_client =
      WithMetadata(ClientSecurity(), kInternalTokenHeader, kInternalToken);
  ExpectOk(Lease(address, internal_client), "Lease");
  ExpectCode(ExecuteOnNode(cluster.node_address(1), public_client),
             grpc::StatusCode::UNAUTHENTICATED, "Storage ExecuteBatch with the public token");
  ExpectOk(NodeInfo(cluster.node_address(1), internal_client), "GetNodeInfo");
  ExpectOk(HealthCheck(cluster.node_address(1), ClientSecurity()), "health check");
  ExpectOk(HealthCheck(address, ClientSecurity()), "health check");

  // Backups go through an internal service: the public token alone is
  // refused; the internal token (conductorctl --internal_token_file) works.
  const std::string ctl = BinaryPath("client/conductorctl");
  const std::string out = cluster.root() + "/backup.out";
  EXPECT_EQ(
      Shell(absl::StrCat(ctl, " --conductor=", address, " --token_file=", certs().public_token_file,
                         " backup --out=", cluster.root(), "/refused >", out, " 2>&1")),
      1);
  EXPECT_TRUE(absl::StrContains(ReadFile(out), "PERMISSION_DENIED")) << ReadFile(out);
  EXPECT_EQ(Shell(absl::StrCat(ctl, " --conductor=", address,
                               " --token_file=", certs().public_token_file, " ", internal,
                               " backup --out=", cluster.root(), "/taken >", out, " 2>&1")),
            0)
      << ReadFile(out);
  EXPECT_TRUE(absl::StrContains(ReadFile(out), "backup written to")) << ReadFile(out);
}

// Flag errors: exit status 2 and a message that names the flag.
TEST_F(SecurityIntegrationTest, BadFlagsExitWithUsageStatus) {
  const std::string dir = MakeTempDir("flags");
  struct Case {
    std::string binary;
    std::vector<std::string> flags;
    std::string expected;
  };
  const std::string missing = dir + "/missing.pem";
  const std::vector<Case> cases = {
      {"conductor/conductor", {"--tls_key=" + certs().server_key}, "--tls_key needs --tls_cert"},
      {"conductor/conductor",
       {"--tls_cert=" + missing, "--tls_key=" + certs().server_key},
       "--tls_cert: cannot read"},
      {"conductor/conductor",
       {"--auth_token_file=" + certs().public_token_file},
       "needs --tls_ca (mutual TLS) or --internal_token_file"},
      {"conductor/conductor", {"--auth_token_file=" + missing}, "--auth_token_file: cannot read"},
      {"storage_node/storage_node", {"--tls_ca=" + certs().ca}, "--tls_ca needs --tls_cert"},
      {"storage_node/storage_node",
       {"--tls_cert=" + certs().server_key, "--tls_key=" + certs().server_key},
       "is not a PEM certificate"},
      {"queue_worker/queue_worker",
       {"--tls_cert=" + certs().server_cert},
       "--tls_cert needs --tls_key"},
      {"queue_worker/queue_worker", {"--internal_token_file=" + missing}, "cannot read"},
  };
  int n = 0;
  for (const Case& c : cases) {
    std::vector<std::string> argv = {BinaryPath(c.binary)};
    if (c.binary == "conductor/conductor") {
      argv.push_back("--listen=127.0.0.1:0");
      argv.push_back("--data_dir=" + dir + "/conductor");
      argv.push_back("--storage_nodes=127.0.0.1:1");
    } else if (c.binary == "storage_node/storage_node") {
      argv.push_back("--listen=127.0.0.1:0");
      argv.push_back("--data_dir=" + dir + "/node");
      argv.push_back("--node_id=node-1");
    } else {
      argv.push_back("--conductor=127.0.0.1:1");
    }
    for (const auto& flag : c.flags) argv.push_back(flag);
    const std::string log = absl::StrCat(dir, "/case-", n++, ".log");
    auto process = Process::Start(argv, log);
    ASSERT_TRUE(process.ok()) << process.status();
    auto code = (*process)->Wait(absl::Seconds(20));
    ASSERT_TRUE(code.ok()) << c.binary << " " << c.flags[0] << " did not exit";
    EXPECT_EQ(*code, 2) << c.binary << " " << c.flags[0] << ": " << (*process)->LogTail();
    EXPECT_TRUE(absl::StrContains((*process)->LogTail(), c.expected))
        << c.binary << " " << c.flags[0] << ": expected \"" << c.expected << "\" in "
        << (*process)->LogTail();
  }
  // A key that does not match its certificate is found when the port opens:
  // a runtime failure (status 1) whose message points at the TLS flags.
  auto process = Process::Start(
      {BinaryPath("storage_node/storage_node"), "--listen=127.0.0.1:0", "--data_dir=" + dir + "/n2",
       "--node_id=node-2", "--tls_cert=" + certs().server_cert, "--tls_key=" + certs().other_key},
      dir + "/mismatch.log");
  ASSERT_TRUE(process.ok()) << process.status();
  auto code = (*process)->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 1) << (*process)->LogTail();
  EXPECT_TRUE(absl::StrContains((*process)->LogTail(), "--tls_key refused"))
      << (*process)->LogTail();
}

}  // namespace
}  // namespace conductor::testing
