#include "common/tls.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace conductor {
namespace {

std::string WriteTemp(const std::string& name, const std::string& contents) {
  std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(ConstantTimeEquals, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("secret", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0", 2), "a"));
}

TEST(LoadToken, FileWinsAndWhitespaceIsTrimmed) {
  setenv("TLS_TEST_TOKEN", "from-env", 1);
  auto token = LoadToken(WriteTemp("token", "  from-file \n"), "token_file", "TLS_TEST_TOKEN");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "from-file");
  token = LoadToken("", "token_file", "TLS_TEST_TOKEN");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "from-env");
  unsetenv("TLS_TEST_TOKEN");
  token = LoadToken("", "token_file", "TLS_TEST_TOKEN");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "");
}

TEST(LoadToken, RefusesMissingBlankAndBinaryTokens) {
  auto token = LoadToken("/nonexistent/token", "token_file", "TLS_TEST_TOKEN");
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(token.status().message().find("--token_file"), absl::string_view::npos);
  token = LoadToken(WriteTemp("blank", " \n"), "token_file", "TLS_TEST_TOKEN");
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  token = LoadToken(WriteTemp("binary",
                              "ab\x01"
                              "cd"),
                    "token_file", "TLS_TEST_TOKEN");
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LoadTls, ChecksFlagCombinations) {
  const std::string cert = WriteTemp("cert.pem", "-----BEGIN CERTIFICATE-----\nx\n");
  const std::string key = WriteTemp("key.pem", "-----BEGIN PRIVATE KEY-----\nx\n");
  auto tls = LoadServerTls({});
  ASSERT_TRUE(tls.ok());
  EXPECT_FALSE(tls->tls());
  EXPECT_EQ(LoadServerTls({"", key, ""}).status().message(),
            "--tls_key needs --tls_cert (the certificate it goes with)");
  EXPECT_EQ(LoadServerTls({cert, "", ""}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadServerTls({"", "", cert}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadServerTls({key, key, ""}).status().code(), absl::StatusCode::kInvalidArgument);
  tls = LoadServerTls({cert, key, cert});
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(tls->mtls());
  // A client may give a CA alone.
  tls = LoadClientTls({"", "", cert});
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_FALSE(tls->tls());
  EXPECT_EQ(tls->ca_pem, "-----BEGIN CERTIFICATE-----\nx\n");
}

TEST(InternalClientSecurity, FollowsTheServerSettings) {
  ServerSecurity server;
  EXPECT_FALSE(InternalClientSecurity(server).tls_enabled());
  EXPECT_TRUE(InternalClientSecurity(server).metadata.empty());
  server.tls.cert_pem = "cert";
  server.tls.key_pem = "key";
  // TLS without a CA: the process's own calls stay plaintext.
  EXPECT_FALSE(InternalClientSecurity(server).tls_enabled());
  server.tls.ca_pem = "ca";
  server.internal_token = "t";
  ClientSecurity client = InternalClientSecurity(server);
  EXPECT_TRUE(client.tls_enabled());
  EXPECT_EQ(client.tls.cert_pem, "cert");
  ASSERT_EQ(client.metadata.size(), 1u);
  EXPECT_EQ(client.metadata[0].first, kInternalTokenHeader);
  EXPECT_EQ(DescribeSecurity(server), "mutual TLS, internal token");
}

TEST(CheckAccess, AppliesThePerMethodRules) {
  const char kOps[] = "/conductor.v1.TableOps/Execute";
  const char kLease[] = "/conductor.internal.v1.JobQueueService/Lease";
  const char kStorage[] = "/storage.v1.Storage/ExecuteBatch";
  const char kHealth[] = "/grpc.health.v1.Health/Check";
  const char kReflection[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  auto code = [](const ServerSecurity& s, const char* path, absl::string_view authorization,
                 absl::string_view internal, bool verified) {
    return CheckAccess(s, path, authorization, internal, verified).error_code();
  };
  // Nothing configured: everything open.
  ServerSecurity open;
  for (const char* path : {kOps, kLease, kStorage, kHealth}) {
    EXPECT_EQ(code(open, path, "", "", false), grpc::StatusCode::OK) << path;
  }
  ServerSecurity s;
  s.public_token = "pub";
  s.internal_token = "int";
  EXPECT_EQ(code(s, kOps, "", "", false), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code(s, kOps, "Bearer nope", "", false), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code(s, kOps, "pub", "", false), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code(s, kOps, "Bearer pub", "", false), grpc::StatusCode::OK);
  EXPECT_EQ(code(s, kOps, "", "int", false), grpc::StatusCode::OK);
  EXPECT_EQ(code(s, kLease, "Bearer pub", "", false), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(code(s, kLease, "", "", false), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code(s, kLease, "", "nope", false), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(code(s, kLease, "", "int", false), grpc::StatusCode::OK);
  // A verified certificate counts only under mutual TLS.
  EXPECT_EQ(code(s, kStorage, "", "", true), grpc::StatusCode::UNAUTHENTICATED);
  s.tls = {"cert", "key", "ca"};
  EXPECT_EQ(code(s, kStorage, "", "", true), grpc::StatusCode::OK);
  EXPECT_EQ(code(s, kOps, "", "", true), grpc::StatusCode::OK);
  EXPECT_EQ(code(s, kHealth, "", "", false), grpc::StatusCode::OK);
  EXPECT_EQ(code(s, kReflection, "", "", false), grpc::StatusCode::OK);
  // A public token only: internal services are not guarded by it.
  ServerSecurity public_only;
  public_only.public_token = "pub";
  EXPECT_FALSE(public_only.internal_auth());
}

}  // namespace
}  // namespace conductor
