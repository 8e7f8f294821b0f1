#include "dist/communicator.h"

// The C API only (the deprecated C++ bindings would need libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "util/error.h"

namespace mf::dist {

namespace {

using Clock = std::chrono::steady_clock;

// Pending nonblocking calls by handle; handles are reused once every call has completed.
std::vector<MPI_Request> g_requests;
std::vector<bool> g_done;

int count_of(int64_t n, const char* what) {
  MF_CHECK(n >= 0 && n <= INT_MAX, "internal: ", what, ": ", n, " values in one MPI call");
  return static_cast<int>(n);
}

[[noreturn]] void abort_job(const Communicator& c, const char* what, double seconds) {
  std::fprintf(stderr,
               "error: rank %d of %d: no answer from the other ranks within %.0f s during %s (a "
               "rank died or hangs; train.dist_timeout sets the bound); ending the job\n",
               c.rank(), c.size(), seconds, what);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return
}

// Polls `request` until it completes; the job ends after `timeout` seconds without completion.
// Yields the CPU while waiting: with more ranks than cores a spinning rank would slow the ranks
// it waits for.
void timed_wait(const Communicator& c, MPI_Request* request, const char* what, double timeout) {
  const auto start = Clock::now();
  while (true) {
    int flag = 0;
    MPI_Test(request, &flag, MPI_STATUS_IGNORE);
    if (flag) return;
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (waited > timeout) abort_job(c, what, waited);
    sched_yield();
  }
}

}  // namespace

bool launched_by_mpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

namespace {

// MPI_Init waits for every process of the job (its exchange of addresses); one that never starts
// or hangs before it would keep the others there forever. A watchdog thread ends this process
// after `seconds` unless MPI_Init returned first; mpirun then ends the job.
class InitWatchdog {
 public:
  explicit InitWatchdog(double seconds)
      : thread_([this, seconds] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (done_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return ok_; }))
            return;
          std::fprintf(stderr,
                       "error: MPI did not start within %.0f s (MPI_Init waits for every process "
                       "of the job: one did not start or hangs; train.dist_timeout sets the "
                       "bound); ending this process\n",
                       seconds);
          std::fflush(stderr);
          _exit(1);
        }) {}
  ~InitWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ok_ = true;
    }
    done_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  bool ok_ = false;
  std::thread thread_;
};

}  // namespace

Communicator& world(double init_timeout) {
  static Communicator* c = [init_timeout] {
    auto* w = new Communicator();
    if (launched_by_mpi()) {
      int provided = 0;
      {
        const InitWatchdog watchdog(init_timeout);
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      }
      MPI_Comm_rank(MPI_COMM_WORLD, &w->rank_);
      MPI_Comm_size(MPI_COMM_WORLD, &w->size_);
      w->mpi_ = true;
    }
    return w;
  }();
  return *c;
}

void finish(int exit_code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  std::fflush(stdout);
  std::fflush(stderr);
  if (exit_code == 0 || exit_code == 3)
    MPI_Finalize();
  else
    MPI_Abort(MPI_COMM_WORLD, exit_code);
}

void Communicator::sum(double* values, int64_t n, const char* what) {
  if (!mpi_) return;
  MPI_Request r;
  MPI_Iallreduce(MPI_IN_PLACE, values, count_of(n, what), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r);
  timed_wait(*this, &r, what, timeout_);
}

void Communicator::sum(float* values, int64_t n, const char* what) {
  if (!mpi_) return;
  MPI_Request r;
  MPI_Iallreduce(MPI_IN_PLACE, values, count_of(n, what), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r);
  timed_wait(*this, &r, what, timeout_);
}

void Communicator::max(double* values, int64_t n, const char* what) {
  if (!mpi_) return;
  MPI_Request r;
  MPI_Iallreduce(MPI_IN_PLACE, values, count_of(n, what), MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD, &r);
  timed_wait(*this, &r, what, timeout_);
}

void Communicator::broadcast(void* data, int64_t bytes, int root, const char* what) {
  if (!mpi_) return;
  // Large states go in pieces below INT_MAX bytes.
  auto* p = static_cast<char*>(data);
  for (int64_t off = 0; off < bytes; off += int64_t(1) << 30) {
    const int64_t piece = std::min<int64_t>(int64_t(1) << 30, bytes - off);
    MPI_Request r;
    MPI_Ibcast(p + off, count_of(piece, what), MPI_BYTE, root, MPI_COMM_WORLD, &r);
    timed_wait(*this, &r, what, timeout_);
  }
}

void Communicator::barrier(const char* what) {
  if (!mpi_) return;
  MPI_Request r;
  MPI_Ibarrier(MPI_COMM_WORLD, &r);
  timed_wait(*this, &r, what, timeout_);
}

int Communicator::start_sum(float* values, int64_t n) {
  if (!mpi_) return -1;
  g_requests.emplace_back();
  g_done.push_back(false);
  MPI_Iallreduce(MPI_IN_PLACE, values, count_of(n, "a gradient bucket"), MPI_FLOAT, MPI_SUM,
                 MPI_COMM_WORLD, &g_requests.back());
  return static_cast<int>(g_requests.size()) - 1;
}

bool Communicator::test(int handle) {
  if (!mpi_ || handle < 0 || handle >= int(g_done.size()) || g_done[handle]) return true;
  int flag = 0;
  MPI_Test(&g_requests[handle], &flag, MPI_STATUS_IGNORE);
  if (flag) complete(handle);
  return flag != 0;
}

void Communicator::wait(int handle, const char* what) {
  if (!mpi_ || handle < 0 || handle >= int(g_done.size())) return;
  if (!g_done[handle]) {
    timed_wait(*this, &g_requests[handle], what, timeout_);
    complete(handle);
  }
}

void Communicator::complete(int handle) {
  g_done[handle] = true;
  bool all = true;
  for (const bool d : g_done) all = all && d;
  if (all) {  // every call of this round is over: handles start again from 0
    g_requests.clear();
    g_done.clear();
  }
}

}  // namespace mf::dist
