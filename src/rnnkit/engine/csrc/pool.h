// A cache of the engine's large buffers (per-sequence caches and gradients).
//
// A training step allocates several buffers of megabytes each and frees them at
// the end of the step. glibc serves blocks that large with fresh mmaps, so every
// step page-faults on, and zeroes, all of them again: at config L that was about
// a third of a training step. Here a freed buffer goes back to a free list and
// the next step of the same shape takes it. Only memory that was already in use
// at the peak is kept, up to a cap (RNNKIT_POOL_MB, default 512; 0 turns the
// cache off), so the peak RSS does not grow; `release()` hands everything back.

#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>

namespace rnnkit {

class BufferPool {
 public:
  // Never destroyed: tensors holding pooled memory may die during static destruction.
  static BufferPool& get() {
    static BufferPool* pool = new BufferPool();
    return *pool;
  }

  // An uninitialised tensor of `sizes`, from the cache when a block fits.
  at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& opts) {
    const int64_t numel = c10::multiply_integers(sizes);
    const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(c10::typeMetaToScalarType(opts.dtype()));
    if (limit_ == 0 || bytes < kMinBytes) return at::empty(sizes, opts);
    size_t cap = (bytes + kGranule - 1) / kGranule * kGranule;
    void* p = take(&cap);
    if (p == nullptr) {
      p = std::aligned_alloc(64, cap);
      TORCH_CHECK(p != nullptr, "rnnkit: out of memory allocating ", cap, " bytes");
    }
    return at::from_blob(p, sizes, [cap](void* q) { BufferPool::get().give(q, cap); }, opts);
  }

  // Free every cached block; returns the bytes released.
  size_t release() {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = cached_;
    for (auto& kv : free_) std::free(kv.second);
    free_.clear();
    cached_ = 0;
    return n;
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  static constexpr size_t kMinBytes = size_t(1) << 20;   // below this glibc reuses its heap anyway
  static constexpr size_t kGranule = size_t(1) << 16;

  BufferPool() {
    const char* env = std::getenv("RNNKIT_POOL_MB");
    limit_ = (env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : 512) << 20;
  }

  // The smallest cached block of at least *cap bytes and at most twice that (so a
  // step with a somewhat shorter sequence reuses a longer one's block); *cap becomes its size.
  void* take(size_t* cap) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.lower_bound(*cap);
    if (it == free_.end() || it->first > 2 * *cap) return nullptr;
    void* p = it->second;
    *cap = it->first;
    cached_ -= it->first;
    free_.erase(it);
    return p;
  }

  void give(void* p, size_t cap) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + cap > limit_) {
      std::free(p);
      return;
    }
    free_.emplace(cap, p);
    cached_ += cap;
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;  // capacity -> block
  size_t cached_ = 0, limit_ = 0;
};

inline at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  return BufferPool::get().empty(sizes, opts);
}

}  // namespace rnnkit
