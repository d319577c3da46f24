// Large buffers for the loops' outputs and saved activations, kept for reuse once their tensors die.
//
// Every training step asks the loops for the same (T, G*H) buffers again. A fresh buffer of megabytes comes
// from mmap, and its first write page-faults every 4 KiB page: on the bench machine, filling a fresh 47 MB
// buffer (an LSTM's gate activations at (128, 35, 650)) took 23 ms, refilling one already mapped 2 ms. glibc's
// malloc keeps such blocks mapped only when the process tells it to (rnnkit/allocator.py), a process-wide
// setting that a library may not make on import; so the loops keep their own. A tensor from `pooled_empty`
// hands its block back here when it dies (its storage's deleter), and the next request of about its size
// takes it. Idle blocks are capped at kIdleBytes (the oldest go first); `release_idle_buffers` frees them all.
#pragma once

#include <torch/extension.h>

#include <cstdlib>
#include <iterator>
#include <list>
#include <mutex>
#include <new>
#include <utility>

namespace rnnkit {

class BufferPool {
 public:
  // never destroyed: a tensor may die after static destructors have run
  static BufferPool& instance() {
    static BufferPool* pool = new BufferPool();
    return *pool;
  }

  Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
    const size_t bytes = size_t(c10::multiply_integers(sizes)) * options.dtype().itemsize();
    if (bytes < kGranule || options.device().type() != at::kCPU) return at::empty(sizes, options);
    const size_t rounded = (bytes + kGranule - 1) / kGranule * kGranule;
    auto [data, size] = take(rounded);
    if (data == nullptr) {
      size = rounded;
      data = std::aligned_alloc(kAlignment, size);
    }
    if (data == nullptr) throw std::bad_alloc();
    return torch::from_blob(data, sizes, [size = size](void* block) { BufferPool::instance().give(block, size); },
                            options);
  }

  // bytes held by idle blocks
  size_t idle_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return idle_bytes_;
  }

  void release_idle() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [bytes, block] : idle_) std::free(block);
    idle_.clear();
    idle_bytes_ = 0;
  }

 private:
  static constexpr size_t kGranule = size_t(1) << 20;    // smaller buffers come from at::empty
  static constexpr size_t kIdleBytes = size_t(1) << 30;  // what the pool keeps while nothing uses it
  static constexpr size_t kAlignment = 64;

  // an idle block of at least `bytes` and at most a quarter more (batches of similar lengths share blocks), and
  // its size: the smallest such, of those the most recently returned (its pages may still be in cache)
  std::pair<void*, size_t> take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t most = bytes + bytes / 4;
    auto best = idle_.rend();
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
      if (it->first >= bytes && it->first <= most && (best == idle_.rend() || it->first < best->first)) best = it;
    }
    if (best == idle_.rend()) return {nullptr, 0};
    const std::pair<void*, size_t> found{best->second, best->first};
    idle_bytes_ -= best->first;
    idle_.erase(std::next(best).base());
    return found;
  }

  void give(void* block, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.emplace_back(bytes, block);
    idle_bytes_ += bytes;
    while (idle_bytes_ > kIdleBytes) {
      idle_bytes_ -= idle_.front().first;
      std::free(idle_.front().second);
      idle_.pop_front();
    }
  }

  std::mutex mutex_;
  std::list<std::pair<size_t, void*>> idle_;  // oldest first
  size_t idle_bytes_ = 0;
};

// at::empty for the loops' large outputs, served from the pool
inline Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return BufferPool::instance().empty(sizes, options);
}

// t itself if contiguous, else a contiguous copy in a pooled buffer (an output's gradient often arrives as a
// broadcast or a transposed view)
inline Tensor pooled_contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor copy = pooled_empty(t.sizes(), t.options());
  copy.copy_(t);
  return copy;
}

}  // namespace rnnkit
