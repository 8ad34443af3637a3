#include "common/server.h"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/errors.h"
#include "common/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/support/server_interceptor.h"

// ThreadSanitizer reads these at start-up in a -fsanitize=thread build (and
// nothing else ever calls it). gRPC's callback API allocates a call's tag on
// the thread that starts the call and runs it on a gRPC thread; the hand-off
// is synchronised inside Debian's uninstrumented libgrpc, so TSan sees the
// header-inlined write and read without the ordering between them. The
// same holds for the callback server (the health service) and the server
// interceptors (UnparsableRequestInterceptor).
extern "C" const char* __tsan_default_suppressions() {
  return "race:grpc::internal::CallbackWithStatusTag\n"
         "race:grpc::internal::CallbackUnaryCallImpl\n"
         "race:grpc::internal::ClientCallbackUnaryImpl\n"
         "race:grpc::internal::CallbackWithSuccessTag\n"
         "race:grpc::ServerBidiReactor\n"
         "race:grpc::Server::CallbackRequest\n"
         "race:grpc::internal::CallbackBidiHandler\n"
         "race:grpc::internal::CallbackServerStreamingHandler\n"
         "race:grpc::internal::InterceptorBatchMethodsImpl\n"
         // Made on one gRPC thread, deleted by ServerContextBase on another.
         "race:UnparsableRequestInterceptor\n"
         // common/tls.cc: its state is written once before the port is
         // added and only read afterwards, on gRPC's executor threads.
         "race:ProcessAuthMetadata\n";
}

ABSL_FLAG(std::string, health_listen, "",
          "HOST:PORT of a second, plaintext port serving only grpc.health.v1, for probes that "
          "cannot use TLS or client certificates (Kubernetes grpc probes); empty: none");

namespace conductor {

absl::Status ValidateListenAddress(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", address, "\" is not HOST:PORT (e.g. 127.0.0.1:50051)"));
  }
  int port = -1;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", address, "\" has no valid port (0..65535)"));
  }
  return absl::OkStatus();
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

std::string HealthListenFlag() { return absl::GetFlag(FLAGS_health_listen); }

namespace {

// A request gRPC could not parse never reaches a handler: gRPC answers
// INTERNAL with no message (protobuf refuses, e.g., a proto3 string field
// holding invalid UTF-8). That is the client's error, so this interceptor
// turns exactly that answer (INTERNAL, no message, no details: every status
// of the services here carries an ErrorInfo) into INVALID_ARGUMENT with a
// message and reason INVALID_ARGUMENT.
class UnparsableRequestInterceptor : public grpc::experimental::Interceptor {
 public:
  // `method` lives as long as the server (gRPC's method table).
  explicit UnparsableRequestInterceptor(const char* method) : method_(method) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::INTERNAL && status.error_message().empty() &&
          status.error_details().empty()) {
        methods->ModifySendStatus(ToGrpcStatus(Error(
            absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
            absl::StrCat("the request to ", method_,
                         " could not be parsed: a string field holds bytes that are not UTF-8 "
                         "(proto3 strings must be valid UTF-8; send binary data as a blob "
                         "value) or the message is malformed"))));
      }
    }
    methods->Proceed();
  }

 private:
  const char* const method_;
};

class UnparsableRequestInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new UnparsableRequestInterceptor(info->method() == nullptr ? "" : info->method());
  }
};

}  // namespace

absl::Status ServeUntilSignal(const ServerConfig& config) {
  if (auto s = ValidateListenAddress(config.listen); !s.ok()) return s;
  // Debian builds Abseil with mutex deadlock detection on; gRPC's mutexes
  // paid 2-7% of a server's CPU for it (bench/README.md).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, MakeServerCredentials(config.security), &port);
  // Without this, gRPC binds with SO_REUSEPORT and a second process on a
  // port already served would share it silently instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(config.max_receive_bytes);
  builder.SetMaxSendMessageSize(256 << 20);
  for (grpc::Service* service : config.services) builder.RegisterService(service);
  {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
    factories.push_back(std::make_unique<UnparsableRequestInterceptorFactory>());
    builder.experimental().SetInterceptorCreators(std::move(factories));
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", config.listen,
        config.security.tls.tls()
            ? " (address in use or not local? or --tls_cert/--tls_key refused: a key that does "
              "not match the certificate? see the log above)"
            : " (address in use or not local?)"));
  }
  // The probe port: its own server (a port of the main one would serve every
  // service), plaintext and without access rules; health only.
  std::unique_ptr<grpc::Server> health_server;
  if (!config.health_listen.empty()) {
    if (auto s = ValidateListenAddress(config.health_listen); !s.ok()) {
      server->Shutdown();
      return absl::InvalidArgumentError(absl::StrCat("--health_listen: ", s.message()));
    }
    grpc::ServerBuilder health_builder;
    int health_port = 0;
    health_builder.AddListeningPort(config.health_listen, grpc::InsecureServerCredentials(),
                                    &health_port);
    health_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    health_builder.SetMaxReceiveMessageSize(4096);
    health_server = health_builder.BuildAndStart();
    if (health_server == nullptr || health_port == 0) {
      server->Shutdown();
      return absl::UnavailableError(absl::StrCat("cannot listen on ", config.health_listen,
                                                 " (--health_listen: address in use or not "
                                                 "local?)"));
    }
    LogInfo("serving grpc.health.v1 only, plaintext, on %s:%d",
            config.health_listen.substr(0, config.health_listen.rfind(':')), health_port);
  }
  std::string host = config.listen.substr(0, config.listen.rfind(':'));
  std::string bound = absl::StrCat(host, ":", port);
  printf("listening on %s\n", bound.c_str());
  fflush(stdout);
  LogInfo("serving on %s (%s)", bound, DescribeSecurity(config.security));

  std::thread waiter([&server, &health_server, &config] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    sigwait(&set, &sig);
    LogInfo("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    if (health_server != nullptr) {
      // Probes see NOT_SERVING while the main server drains.
      health_server->GetHealthCheckService()->SetServingStatus(false);
    }
    if (config.on_shutdown) config.on_shutdown();
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(config.shutdown_grace_ms));
    if (health_server != nullptr) health_server->Shutdown();
  });
  server->Wait();
  waiter.join();
  LogInfo("stopped");
  return absl::OkStatus();
}

absl::Time CallDeadline(const grpc::ServerContext& context) {
  auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace conductor
