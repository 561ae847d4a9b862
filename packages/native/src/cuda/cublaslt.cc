#include "cuda/cublaslt.h"

#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include "addon/dynamic_library.h"
#include "cuda/cublaslt_abi.h"
#include "cuda/device.h"

namespace mist::cuda {
namespace {

// Workspace for split-K and similar algorithms, allocated once from the caching allocator on the
// first GEMM and shared by every call (all of them run on the compute stream, one after another).
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

struct CublasLtApi {
  cublasLtCreate_fn create = nullptr;
  cublasLtDestroy_fn destroy = nullptr;
  cublasLtGetVersion_fn getVersion = nullptr;        // optional
  cublasLtGetStatusName_fn getStatusName = nullptr;  // optional
  cublasLtMatmulDescCreate_fn descCreate = nullptr;
  cublasLtMatmulDescDestroy_fn descDestroy = nullptr;
  cublasLtMatmulDescSetAttribute_fn descSetAttribute = nullptr;
  cublasLtMatrixLayoutCreate_fn layoutCreate = nullptr;
  cublasLtMatrixLayoutDestroy_fn layoutDestroy = nullptr;
  cublasLtMatmulPreferenceCreate_fn preferenceCreate = nullptr;
  cublasLtMatmulPreferenceDestroy_fn preferenceDestroy = nullptr;
  cublasLtMatmulPreferenceSetAttribute_fn preferenceSetAttribute = nullptr;
  cublasLtMatmulAlgoGetHeuristic_fn algoGetHeuristic = nullptr;
  cublasLtMatmul_fn matmul = nullptr;
};

struct Loaded {
  CublasLtProbe probe;
  CublasLtApi api;
};

const Loaded& Load() {
  static const Loaded loaded = [] {
    Loaded l;
    OpenedLibrary lib = OpenLibrary(
        "MIST_CUBLASLT_PATH", {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"});
    if (lib.handle == nullptr) {
      l.probe.reason = "libcublasLt could not be opened (set MIST_CUBLASLT_PATH to the library or its directory): " +
                       lib.error;
      return l;
    }
    CublasLtApi& api = l.api;
    std::string missing;
    Bind(lib.handle, "cublasLtCreate", api.create, missing);
    Bind(lib.handle, "cublasLtDestroy", api.destroy, missing);
    Bind(lib.handle, "cublasLtMatmulDescCreate", api.descCreate, missing);
    Bind(lib.handle, "cublasLtMatmulDescDestroy", api.descDestroy, missing);
    Bind(lib.handle, "cublasLtMatmulDescSetAttribute", api.descSetAttribute, missing);
    Bind(lib.handle, "cublasLtMatrixLayoutCreate", api.layoutCreate, missing);
    Bind(lib.handle, "cublasLtMatrixLayoutDestroy", api.layoutDestroy, missing);
    Bind(lib.handle, "cublasLtMatmulPreferenceCreate", api.preferenceCreate, missing);
    Bind(lib.handle, "cublasLtMatmulPreferenceDestroy", api.preferenceDestroy, missing);
    Bind(lib.handle, "cublasLtMatmulPreferenceSetAttribute", api.preferenceSetAttribute, missing);
    Bind(lib.handle, "cublasLtMatmulAlgoGetHeuristic", api.algoGetHeuristic, missing);
    Bind(lib.handle, "cublasLtMatmul", api.matmul, missing);
    BindOptional(lib.handle, "cublasLtGetVersion", api.getVersion);
    BindOptional(lib.handle, "cublasLtGetStatusName", api.getStatusName);
    l.probe.path = lib.path;
    if (!missing.empty()) {
      l.probe.reason = lib.path + " lacks the symbol " + missing;
      return l;
    }
    l.probe.available = true;
    if (api.getVersion != nullptr) l.probe.version = api.getVersion();
    return l;
  }();
  return loaded;
}

void CheckLt(const CublasLtApi& api, const char* call, cublasStatus_t status) {
  if (status == kCublasStatusSuccess) return;
  const char* name = api.getStatusName != nullptr ? api.getStatusName(status) : nullptr;
  throw std::runtime_error(std::string("matmul (cuda): ") + call + " failed: " +
                           (name != nullptr ? name : "cuBLAS status") + " (" + std::to_string(status) + ")");
}

int DataType(DType dtype) {
  switch (dtype) {
    case DType::kF32: return kCudaR32F;
    case DType::kBF16: return kCudaR16BF;
    case DType::kF16: return kCudaR16F;
    default: break;
  }
  throw std::invalid_argument("matmul (cuda): cuBLASLt GEMM takes f32, bf16 or f16 storage");
}

// The largest power of two up to 256 that divides the address (what the heuristic may assume).
uint32_t AlignmentOf(CUdeviceptr p) {
  uint32_t a = 256;
  while (a > 1 && p % a != 0) a >>= 1;
  return a;
}

struct PlanKey {
  int dtype;
  bool transA, transB;
  int64_t m, n, k;
  uint32_t alignA, alignB, alignC;
  bool operator<(const PlanKey& o) const {
    return std::tie(dtype, transA, transB, m, n, k, alignA, alignB, alignC) <
           std::tie(o.dtype, o.transA, o.transB, o.m, o.n, o.k, o.alignA, o.alignB, o.alignC);
  }
};

// Descriptors and the heuristic's algorithm for one problem, kept for the life of the process.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t layoutA = nullptr;  // cuBLASLt's A operand: the memory of our B
  cublasLtMatrixLayout_t layoutB = nullptr;  // cuBLASLt's B operand: the memory of our A
  cublasLtMatrixLayout_t layoutC = nullptr;  // C and D
  cublasLtMatmulAlgo_t algo{};
  bool found = false;
};

// Process-wide state, never destroyed: the handle and plans must not be torn down during static
// destruction, when the driver may already be gone.
struct State {
  std::mutex mutex;
  cublasLtHandle_t handle = nullptr;
  CUdeviceptr workspace = 0;
  std::map<PlanKey, Plan> plans;
};
State& GetState() {
  static State* state = new State();
  return *state;
}

// cuBLASLt is column-major. A row-major [r, c] matrix is the column-major [c, r] matrix with
// leading dimension c, its transpose; so row-major C = op(A) op(B) is column-major
// C^T = op(B)^T op(A)^T: cuBLASLt's A is our B (with our transB), its B is our A (with our
// transA), its m = n, its n = m, and every layout is the stored matrix seen column-major.
void DestroyPlan(const CublasLtApi& api, Plan& plan) {
  if (plan.layoutC != nullptr) api.layoutDestroy(plan.layoutC);
  if (plan.layoutB != nullptr) api.layoutDestroy(plan.layoutB);
  if (plan.layoutA != nullptr) api.layoutDestroy(plan.layoutA);
  if (plan.desc != nullptr) api.descDestroy(plan.desc);
  plan = Plan{};
}

void FillPlan(const CublasLtApi& api, cublasLtHandle_t handle, const PlanKey& key, Plan& plan) {
  const int type = DataType(static_cast<DType>(key.dtype));
  CheckLt(api, "cublasLtMatmulDescCreate", api.descCreate(&plan.desc, kCublasCompute32F, kCudaR32F));
  const int32_t opA = key.transB ? kCublasOpT : kCublasOpN;
  const int32_t opB = key.transA ? kCublasOpT : kCublasOpN;
  CheckLt(api, "cublasLtMatmulDescSetAttribute(TRANSA)",
          api.descSetAttribute(plan.desc, kCublasLtMatmulDescTransA, &opA, sizeof(opA)));
  CheckLt(api, "cublasLtMatmulDescSetAttribute(TRANSB)",
          api.descSetAttribute(plan.desc, kCublasLtMatmulDescTransB, &opB, sizeof(opB)));
  // Our B: stored [k, n] (column-major n x k, ld n) or, transposed, [n, k] (column-major k x n, ld k).
  if (key.transB) {
    CheckLt(api, "cublasLtMatrixLayoutCreate(A)", api.layoutCreate(&plan.layoutA, type, key.k, key.n, key.k));
  } else {
    CheckLt(api, "cublasLtMatrixLayoutCreate(A)", api.layoutCreate(&plan.layoutA, type, key.n, key.k, key.n));
  }
  // Our A: stored [m, k] (column-major k x m, ld k) or, transposed, [k, m] (column-major m x k, ld m).
  if (key.transA) {
    CheckLt(api, "cublasLtMatrixLayoutCreate(B)", api.layoutCreate(&plan.layoutB, type, key.m, key.k, key.m));
  } else {
    CheckLt(api, "cublasLtMatrixLayoutCreate(B)", api.layoutCreate(&plan.layoutB, type, key.k, key.m, key.k));
  }
  // C: stored [m, n], column-major n x m, ld n.
  CheckLt(api, "cublasLtMatrixLayoutCreate(C)", api.layoutCreate(&plan.layoutC, type, key.n, key.m, key.n));

  cublasLtMatmulPreference_t pref = nullptr;
  CheckLt(api, "cublasLtMatmulPreferenceCreate", api.preferenceCreate(&pref));
  try {
    const uint64_t workspace = kWorkspaceBytes;
    CheckLt(api, "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)",
            api.preferenceSetAttribute(pref, kCublasLtMatmulPrefMaxWorkspaceBytes, &workspace, sizeof(workspace)));
    const uint32_t alignments[4] = {key.alignB, key.alignA, key.alignC, key.alignC};  // cuBLASLt's A, B, C, D
    const int attrs[4] = {kCublasLtMatmulPrefMinAlignmentA, kCublasLtMatmulPrefMinAlignmentB,
                          kCublasLtMatmulPrefMinAlignmentC, kCublasLtMatmulPrefMinAlignmentD};
    for (int i = 0; i < 4; ++i) {
      CheckLt(api, "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)",
              api.preferenceSetAttribute(pref, attrs[i], &alignments[i], sizeof(uint32_t)));
    }
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    const cublasStatus_t status = api.algoGetHeuristic(handle, plan.desc, plan.layoutA, plan.layoutB, plan.layoutC,
                                                       plan.layoutC, pref, 1, &result, &count);
    if (status == kCublasStatusSuccess && count > 0 && result.state == kCublasStatusSuccess) {
      plan.algo = result.algo;
      plan.found = true;
    } else if (status != kCublasStatusSuccess && status != kCublasStatusNotSupported) {
      CheckLt(api, "cublasLtMatmulAlgoGetHeuristic", status);
    }
  } catch (...) {
    api.preferenceDestroy(pref);
    throw;
  }
  api.preferenceDestroy(pref);
}

// A plan for `key`; when cuBLASLt has no algorithm for it, a plan with found = false and no
// descriptors. Nothing is leaked when a call fails.
Plan BuildPlan(const CublasLtApi& api, cublasLtHandle_t handle, const PlanKey& key) {
  Plan plan;
  try {
    FillPlan(api, handle, key, plan);
  } catch (...) {
    DestroyPlan(api, plan);
    throw;
  }
  if (!plan.found) DestroyPlan(api, plan);
  return plan;
}

}  // namespace

const CublasLtProbe& CublasLtStatus() { return Load().probe; }

bool CublasLtGemm(DType dtype, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, CUdeviceptr a,
                  CUdeviceptr b, float beta, CUdeviceptr c) {
  const Loaded& loaded = Load();
  if (!loaded.probe.available) {
    throw std::runtime_error("matmul (cuda): cuBLASLt is not available: " + loaded.probe.reason);
  }
  const CublasLtApi& api = loaded.api;
  Device& device = Device::Get();
  device.MakeCurrent();
  State& state = GetState();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (state.handle == nullptr) CheckLt(api, "cublasLtCreate", api.create(&state.handle));
  if (state.workspace == 0) state.workspace = static_cast<CUdeviceptr>(device.allocator().Allocate(kWorkspaceBytes));

  const PlanKey key{static_cast<int>(dtype), transA, transB, m, n, k, AlignmentOf(a), AlignmentOf(b), AlignmentOf(c)};
  auto it = state.plans.find(key);
  if (it == state.plans.end()) it = state.plans.emplace(key, BuildPlan(api, state.handle, key)).first;
  const Plan& plan = it->second;
  if (!plan.found) return false;
  CheckLt(api, "cublasLtMatmul",
          api.matmul(state.handle, plan.desc, &alpha, reinterpret_cast<const void*>(b), plan.layoutA,
                     reinterpret_cast<const void*>(a), plan.layoutB, &beta, reinterpret_cast<const void*>(c),
                     plan.layoutC, reinterpret_cast<void*>(c), plan.layoutC, &plan.algo,
                     reinterpret_cast<void*>(state.workspace), kWorkspaceBytes, device.stream(StreamKind::kCompute)));
  return true;
}

}  // namespace mist::cuda
