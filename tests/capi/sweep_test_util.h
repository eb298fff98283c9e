// sweep_test_util.h - the bad-input sweep of the test_api_bad_input_*.cpp files. A Case is one
// valid call of a C API function; Case::run() first checks that it succeeds, then replaces each
// tensor argument (function parameters and tensors inside parameter structs alike) by a broken
// copy, one at a time, and checks that the call fails cleanly. Every tensor lives in a buffer of
// exactly its size, so a broken shape that the library wrongly accepts shows up under
// AddressSanitizer.
//
// Expectations follow the header text: kFail where dsk_tensor.h or the function's header makes the
// input invalid, kOk where it makes it valid (a NULL optional tensor), kAny where the headers do
// not decide (the call must then only return cleanly), kSkip where the input would be valid but
// describes memory the test does not own (a larger shape the function accepts).
// Set DSK_SWEEP_VERBOSE=1 to print every call's outcome and message.
#ifndef DSK_TESTS_CAPI_SWEEP_TEST_UTIL_H_
#define DSK_TESTS_CAPI_SWEEP_TEST_UTIL_H_

#include <doctest/doctest.h>
#include <dsk/dsk.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mla_test_util.h"
#include "sweep_mutations.h"
#include "test_util.h"

namespace sweep {

enum class Expect { kFail, kOk, kAny, kSkip };

inline bool verbose() {
  const char* v = std::getenv("DSK_SWEEP_VERBOSE");
  return v != nullptr && v[0] == '1';
}

// One valid call and its arguments. Arguments are added with in()/out() (and the opt_ forms for
// arguments the function accepts as NULL); call() builds the call from c[i], the current tensor of
// argument i (the valid one or a mutant).
class Case {
 public:
  explicit Case(const char* fn) : fn_(fn) {}
  Case(const Case&) = delete;
  Case& operator=(const Case&) = delete;

  dsk_test::CpuContext ctx;
  std::function<dsk_status()> call;

  int in(const char* name, std::vector<int64_t> shape, int32_t dtype_id,
         std::vector<double> values = {}) {
    return add(name, false, false, std::move(shape), dtype_id, std::move(values));
  }
  int out(const char* name, std::vector<int64_t> shape, int32_t dtype_id,
          std::vector<double> values = {}) {
    return add(name, true, false, std::move(shape), dtype_id, std::move(values));
  }
  int opt_in(const char* name, std::vector<int64_t> shape, int32_t dtype_id,
             std::vector<double> values = {}) {
    return add(name, false, true, std::move(shape), dtype_id, std::move(values));
  }
  int opt_out(const char* name, std::vector<int64_t> shape, int32_t dtype_id) {
    return add(name, true, true, std::move(shape), dtype_id, {});
  }
  const DLTensor* operator[](int i) const { return cur_[static_cast<size_t>(i)]; }

  // Overrides the default expectation of mutation m on argument i (-1: on every argument).
  void expect(int i, int m, Expect e) { overrides_[{i, m}] = e; }
  void expect(int i, std::initializer_list<int> ms, Expect e) {
    for (int m : ms) expect(i, m, e);
  }
  // What the call gives with every tensor in CUDA memory (kFail: a CPU context) or in pinned host
  // memory (kOk: host memory runs on the CPU reference under any context).
  void all_cuda(Expect e) { all_cuda_ = e; }
  void all_cuda_host(Expect e) { all_cuda_host_ = e; }
  // Other names a mismatch message may use (scalars such as "num_experts" or "plan").
  void also_named(std::initializer_list<const char*> names) {
    for (const char* n : names) extra_names_.emplace_back(n);
  }

  // A parameter struct: `ptr` is what the call passes, `s` what it points to. NULL must fail
  // naming it (unless `null` says otherwise), a struct_size below the first release must be
  // DSK_ERR_VERSION_MISMATCH, and a larger struct_size (a newer caller) must work.
  template <typename S>
  void versioned(const char* name, const S*& ptr, S& s, Expect null = Expect::kFail) {
    const S* valid = ptr;
    structs_.push_back(
        {name, [&ptr, valid](bool on) { ptr = on ? nullptr : valid; }, &s.struct_size, null});
  }

  // A call with a bad scalar (enum, count, flag); must fail naming one of `names`.
  void bad(const char* what, std::initializer_list<const char*> names,
           std::function<dsk_status()> fn) {
    scalars_.push_back({what, std::vector<std::string>(names.begin(), names.end()), std::move(fn)});
  }

  void run();

 private:
  struct Struct {
    std::string name;
    std::function<void(bool)> set_null;
    uint32_t* size;
    Expect null;
  };
  struct Scalar {
    std::string what;
    std::vector<std::string> names;
    std::function<dsk_status()> fn;
  };

  int add(const char* name, bool output, bool optional, std::vector<int64_t> shape,
          int32_t dtype_id, std::vector<double> values);
  Expect expectation(int i, int m) const;
  void check(dsk_status s, Expect e, const std::string& what, std::vector<std::string> names);
  void check_inputs(const std::string& what);
  bool names_any(const std::string& message, const std::vector<std::string>& names) const;

  const char* fn_;
  std::deque<Arg> args_;  // stable addresses: cur_ points into it
  std::vector<const DLTensor*> cur_;
  std::vector<std::vector<uint8_t>> snapshot_;
  std::map<std::pair<int, int>, Expect> overrides_;
  Expect all_cuda_ = Expect::kFail, all_cuda_host_ = Expect::kOk;
  std::vector<std::string> extra_names_;
  std::vector<Struct> structs_;
  std::vector<Scalar> scalars_;
};

inline int Case::add(const char* name, bool output, bool optional, std::vector<int64_t> shape,
                     int32_t dtype_id, std::vector<double> values) {
  args_.emplace_back();
  Arg& a = args_.back();
  a.name = name;
  a.output = output;
  a.optional = optional;
  a.dtype_id = dtype_id;
  a.shape = std::move(shape);
  const int64_t n = numel(a.shape);
  a.mem.assign(static_cast<size_t>(n) * dsk_dtype_size(dsk_test::dtype(dtype_id)), 0);
  if (values.empty()) values.push_back(is_int(dtype_id) ? 0.0 : 0.25);
  REQUIRE((values.size() == 1 || static_cast<int64_t>(values.size()) == n));
  // Values go through dsk_convert_host from int64 or f32, so every dtype is written the same way.
  if (is_int(dtype_id)) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = static_cast<int64_t>(values[values.size() == 1 ? 0 : i]);
    }
    REQUIRE(dsk_convert_host(dsk_test::dtype(DSK_DTYPE_INT64), v.data(), dsk_test::dtype(dtype_id),
                             a.mem.data(), v.size()) == DSK_OK);
  } else {
    std::vector<float> v(static_cast<size_t>(n));
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = static_cast<float>(values[values.size() == 1 ? 0 : i]);
    }
    REQUIRE(dsk_convert_host(dsk_test::dtype(DSK_DTYPE_F32), v.data(), dsk_test::dtype(dtype_id),
                             a.mem.data(), v.size()) == DSK_OK);
  }
  a.dl.data = a.mem.data();
  a.dl.device = DLDevice{kDLCPU, 0};
  a.dl.ndim = static_cast<int32_t>(a.shape.size());
  a.dl.dtype = dsk_test::dtype(dtype_id);
  a.dl.shape = a.shape.data();
  cur_.push_back(&a.dl);
  return static_cast<int>(args_.size() - 1);
}

inline Expect Case::expectation(int i, int m) const {
  for (int key : {i, -1}) {
    auto it = overrides_.find({key, m});
    if (it != overrides_.end()) return it->second;
  }
  const Arg& a = args_[static_cast<size_t>(i)];
  switch (m) {
    case kNull:
      return a.optional ? Expect::kOk : Expect::kFail;
    case kCudaHost:    // one device type or two? dsk_ops.h does not say
    case kMisaligned:  // no header asks for aligned elements
      return Expect::kAny;
    case kZeroStride:
    case kOverlapStride:  // inputs may overlap themselves (broadcasts); outputs may not
      return a.output ? Expect::kFail : Expect::kAny;
    default:
      return Expect::kFail;
  }
}

inline bool Case::names_any(const std::string& message,
                            const std::vector<std::string>& names) const {
  for (const std::string& n : names) {
    if (mla_test::names(message, n)) return true;
  }
  return false;
}

inline void Case::check(dsk_status s, Expect e, const std::string& what,
                        std::vector<std::string> names) {
  const std::string message = s == DSK_OK ? "" : dsk_last_error_message();
  const std::string context =
      std::string(fn_) + " / " + what + " -> " + dsk_status_string(s) + ": " + message;
  if (verbose()) MESSAGE(context);
  INFO(context);
  if (e == Expect::kOk) CHECK(s == DSK_OK);
  if (e == Expect::kFail) CHECK(s != DSK_OK);
  if (s == DSK_OK) return;
  // Whatever the expectation, a failure is reported properly: a documented code, a message that
  // starts with the function's name and names an argument.
  CHECK((s > DSK_OK && s <= DSK_ERR_NOT_FOUND && s != DSK_ERR_INTERNAL));
  CHECK(message.rfind(std::string(fn_) + ": ", 0) == 0);
  CHECK(message.size() > std::strlen(fn_) + 2);
  if (names.empty()) {
    for (const Arg& a : args_) names.push_back(a.name);
    names.insert(names.end(), extra_names_.begin(), extra_names_.end());
  }
  CHECK(names_any(message, names));
}

inline void Case::check_inputs(const std::string& what) {
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i].output) continue;
    const std::string note = std::string(fn_) + " / " + what + ": input " + args_[i].name;
    INFO(note);
    CHECK(args_[i].mem == snapshot_[i]);
  }
}

inline void Case::run() {
  REQUIRE(call);
  {
    const dsk_status s = call();
    const std::string note = std::string(fn_) + " valid call: " + dsk_last_error_message();
    INFO(note);
    REQUIRE(s == DSK_OK);
  }
  snapshot_.clear();
  for (const Arg& a : args_) snapshot_.push_back(a.mem);

  // One argument at a time.
  for (size_t i = 0; i < args_.size(); ++i) {
    const Arg& a = args_[i];
    for (int m = 0; m < kMutCount; ++m) {
      const Expect e = expectation(static_cast<int>(i), m);
      if (e == Expect::kSkip) continue;
      std::unique_ptr<Mutant> mt = mutate(a, m);
      if (!mt) continue;
      const std::string what = a.name + ": " + label(m);
      cur_[i] = mt->get();
      const dsk_status s = call();
      cur_[i] = &a.dl;
      std::vector<std::string> names;
      // A NULL optional argument can only be wrong through what the others expect of it.
      const bool own = intrinsic(m, a.output) && !(m == kNull && a.optional);
      if (own && e == Expect::kFail) names.push_back(a.name);
      // CUDA memory under a CPU context: the tensor or the context is the one to change.
      if (m == kCuda || m == kCudaManaged) names = {a.name, "ctx"};
      check(s, e, what, names);
      check_inputs(what);
    }
  }

  // An output one element into another argument's memory: never the same view, always overlap.
  for (size_t o = 0; o < args_.size(); ++o) {
    if (!args_[o].output) continue;
    for (size_t x = 0; x < args_.size(); ++x) {
      if (x == o) continue;
      const Arg &out = args_[o], &other = args_[x];
      // One element in, unless `other` is a single element: then at its very start.
      size_t shift = dsk_dtype_size(out.dl.dtype);
      if (other.mem.size() <= shift) {
        if (other.dtype_id == out.dtype_id && other.shape == out.shape) continue;  // in place
        shift = 0;
      }
      std::vector<uint8_t> mem(std::max(other.mem.size(), out.mem.size() + shift));
      std::memcpy(mem.data(), other.mem.data(), other.mem.size());
      DLTensor od = out.dl, xd = other.dl;
      xd.data = mem.data();
      od.data = mem.data() + shift;
      cur_[x] = &xd;
      cur_[o] = &od;
      const dsk_status s = call();
      cur_[x] = &other.dl;
      cur_[o] = &out.dl;
      check(s, Expect::kFail, out.name + " overlapping " + other.name, {out.name, other.name});
      check_inputs(out.name + " overlapping " + other.name);
    }
  }

  // Every tensor on one other device type at once.
  for (int m : {kCuda, kCudaHost}) {
    std::vector<DLTensor> moved;
    moved.reserve(args_.size());
    for (size_t i = 0; i < args_.size(); ++i) {
      moved.push_back(args_[i].dl);
      moved.back().device = DLDevice{m == kCuda ? kDLCUDA : kDLCUDAHost, 0};
      cur_[i] = &moved.back();
    }
    const dsk_status s = call();
    for (size_t i = 0; i < args_.size(); ++i) cur_[i] = &args_[i].dl;
    std::vector<std::string> names;
    if (m == kCuda) {
      for (const Arg& a : args_) names.push_back(a.name);
      names.emplace_back("ctx");
    }
    check(s, m == kCuda ? all_cuda_ : all_cuda_host_, std::string("every tensor: ") + label(m),
          names);
    check_inputs(std::string("every tensor: ") + label(m));
  }

  for (Struct& st : structs_) {
    st.set_null(true);
    check(call(), st.null, st.name + " NULL", {st.name});
    st.set_null(false);
    const uint32_t valid = *st.size;
    for (uint32_t size : {0u, 4u, 0xFFFFFFFFu}) {
      *st.size = size;
      const dsk_status s = call();
      *st.size = valid;
      const std::string what = st.name + "->struct_size = " + std::to_string(size);
      if (size == 0xFFFFFFFFu) {
        // A caller built against a newer header: read up to what this library knows.
        check(s, Expect::kOk, what, {});
      } else {
        check(s, Expect::kFail, what, {st.name + "->struct_size"});
        const std::string note = std::string(fn_) + " / " + what;
        INFO(note);
        CHECK(s == DSK_ERR_VERSION_MISMATCH);
      }
    }
    check_inputs(st.name);
  }

  for (Scalar& sc : scalars_) {
    check(sc.fn(), Expect::kFail, sc.what, sc.names);
    check_inputs(sc.what);
  }
}

}  // namespace sweep

#endif  // DSK_TESTS_CAPI_SWEEP_TEST_UTIL_H_
