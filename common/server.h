// The common life of a binary's gRPC server: listen, health and reflection,
// print the bound address, and shut down cleanly on SIGTERM / SIGINT.
#ifndef CONDUCTOR_COMMON_SERVER_H_
#define CONDUCTOR_COMMON_SERVER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tls.h"
#include "grpcpp/grpcpp.h"

namespace conductor {

// Splits "HOST:PORT" (or "[v6]:PORT"); the port may be 0.
absl::Status ValidateListenAddress(const std::string& address);

// The caller's deadline of a call being served; InfiniteFuture when none.
absl::Time CallDeadline(const grpc::ServerContext& context);

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// later. REQUIRES: called from main() before any thread is created.
void BlockTerminationSignals();

struct ServerConfig {
  std::string listen;
  std::vector<grpc::Service*> services;
  // Largest request accepted, in bytes.
  int max_receive_bytes = 64 << 20;
  // Called once a termination signal arrives, before the server shuts down.
  std::function<void()> on_shutdown;
  // How long in-flight calls get to finish at shutdown.
  int shutdown_grace_ms = 2000;
  // TLS and per-method access rules (common/tls.h); default: plaintext, open.
  ServerSecurity security;
  // When set: a second, plaintext port that serves only grpc.health.v1 (and
  // reflection of it), for probes that cannot speak TLS or present client
  // certificates (Kubernetes' grpc probes). It reports NOT_SERVING once the
  // main server begins to shut down. Usually HealthListenFlag().
  std::string health_listen;
};

// --health_listen (defined by this library, so every binary has it).
std::string HealthListenFlag();

// Starts the server, prints "listening on HOST:PORT" (the real port when 0
// was asked) on stdout, and blocks until SIGTERM or SIGINT. Returns an error
// when the address cannot be bound.
absl::Status ServeUntilSignal(const ServerConfig& config);

}  // namespace conductor

#endif  // CONDUCTOR_COMMON_SERVER_H_
