// The TLS and internal-token flags shared by conductor, storage_node and
// queue_worker (docs/security.md):
//
//   --tls_cert=FILE --tls_key=FILE   serve TLS with this certificate and key
//   --tls_ca=FILE                    mutual TLS: verify peers against this CA,
//                                    and present the cert/key on own calls
//   --internal_token_file=FILE       shared secret of the cluster's internal
//                                    calls (or env CONDUCTOR_INTERNAL_TOKEN)
#ifndef CONDUCTOR_COMMON_SECURITY_FLAGS_H_
#define CONDUCTOR_COMMON_SECURITY_FLAGS_H_

#include "absl/status/statusor.h"
#include "common/tls.h"

namespace conductor {

// Reads and checks the flags (files exist, cert and key together, a CA only
// with them). INVALID_ARGUMENT with a message naming the flag otherwise:
// callers exit with status 2. Also installs InternalClientSecurity() as the
// process's default client security (SetDefaultClientSecurity), so every
// channel made with MakeChannel(address, args) uses it.
absl::StatusOr<ServerSecurity> SecurityFromFlags();

}  // namespace conductor

#endif  // CONDUCTOR_COMMON_SECURITY_FLAGS_H_
