// Every binary reports a malformed command line with exit status 2 (usage),
// keeping 1 for runtime failures such as an unusable data directory.
//
// Abseil prints the flag error, calls this hook, then exits with status 1;
// overriding the hook (a weak symbol in Abseil) lets us exit with 2 instead.
// Linked into a binary through //common:flag_errors (alwayslink).
#include <cstdlib>

#include "absl/base/config.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/string_view.h"

extern "C" void ABSL_INTERNAL_C_SYMBOL(AbslInternalReportFatalUsageError)(absl::string_view) {
  std::_Exit(2);
}
