// STUB: the norm benchmarks land with their ops.
#include "ops_bench.h"

namespace dsk::bench {

void register_norm_benchmarks(const OpsEnv&) {}

}  // namespace dsk::bench
