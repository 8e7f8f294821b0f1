// The processes of a data-parallel run (`mpirun -np N marginface train …`).
//
// Launched by an MPI launcher (OpenMPI's mpirun sets OMPI_COMM_WORLD_SIZE, MPICH's hydra PMI_SIZE),
// world() is MPI_COMM_WORLD; otherwise it is one process and MPI is never initialised, so every
// other command and a plain `marginface train` run exactly as without MPI (and start no faster or
// slower). Every collective of a one-process world is a no-op or a copy.
//
// No collective waits forever: each runs as a nonblocking MPI call polled until it completes or
// `timeout` seconds pass. A rank that died or hangs therefore stops the others with an error
// naming the collective within that bound, and MPI_Abort ends the whole job (mpirun also ends it
// by itself within about a second when a rank exits without finishing).
//
// Only the thread that called world() first may call collectives (MPI_THREAD_FUNNELED); the
// loader's threads never do.
#pragma once

#include <cstdint>

namespace mf::dist {

class Communicator {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  bool uses_mpi() const { return mpi_; }

  // The bound on every wait, in seconds (train.dist_timeout).
  void set_timeout(double seconds) { timeout_ = seconds; }
  double timeout() const { return timeout_; }

  // In-place sums and maxima over all ranks. `what` names the collective in a timeout message.
  void sum(double* values, int64_t n, const char* what);
  void sum(float* values, int64_t n, const char* what);
  void max(double* values, int64_t n, const char* what);
  // `bytes` of rank `root` to every rank.
  void broadcast(void* data, int64_t bytes, int root, const char* what);
  void barrier(const char* what);

  // Nonblocking in-place float sum (the gradient buckets): start, poke progress with test()
  // while computing, then wait(). Returns a handle.
  int start_sum(float* values, int64_t n);
  bool test(int handle);  // true once complete; also drives MPI's progress
  void wait(int handle, const char* what);

 private:
  friend Communicator& world(double init_timeout);
  Communicator() = default;
  void complete(int handle);

  bool mpi_ = false;
  int rank_ = 0, size_ = 1;
  double timeout_ = 600.0;
};

// The process's world (built on first use; initialises MPI when launched by an MPI launcher).
// `init_timeout` (seconds, first call only) bounds MPI_Init: it waits for every process of the
// job, and a process that never gets there would hold the others forever; past the bound this
// process exits with a message (status 1) and mpirun ends the job.
Communicator& world(double init_timeout = 600.0);
// Whether this process was started by an MPI launcher (without initialising anything).
bool launched_by_mpi();
// Ends MPI before the process exits: MPI_Finalize for a coordinated end (exit code 0, or 3 for a
// stop every rank agreed on), MPI_Abort otherwise so a rank's error ends the job instead of
// leaving the other ranks waiting. Nothing when MPI was never initialised.
void finish(int exit_code);

}  // namespace mf::dist
