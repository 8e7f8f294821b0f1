#!/usr/bin/env python3
"""How data-parallel training (mpirun -np N marginface train) scales: a written model.

Per step, every node computes its slice (t_c seconds: forward + backward of its local batch), then
the gradients are summed over the N nodes by a ring allreduce in k buckets, started as backward
finishes each (src/train/data_parallel.h). Ring allreduce of n bytes (Patarasuk & Yuan, "Bandwidth
optimal all-reduce algorithms for clusters of workstations", JPDC 2009; Thakur et al. 2005):

    t_ar = 2 (N - 1) alpha k  +  2 (N - 1) / N  n / B           (alpha: per-message latency,
                                                                 B: link bandwidth in bytes/s)
Backward is ~2/3 of t_c; bucket i can start once its layers are done, so all but the last bucket
can hide behind the rest of backward:

    exposed = max(t_ar / k,  t_ar - (1 - 1/k) t_b),   t_b = 2/3 t_c
    images/s = N b / (t_c + exposed),   efficiency = t_c / (t_c + exposed)

With Partial FC the classifier is sharded, not allreduced: the embeddings are all-gathered
(N b D floats) and their gradients reduce-scattered, which adds 2 (N - 1)/N N b D 4 / B (exposed:
it sits between forward and backward).

Usage:
  scripts/scaling_model.py                      # IR-50, the table for 8/32/128 nodes
  scripts/scaling_model.py --check-params 9222656 --check-serial-ms 60 --check-compute-ips 30 \
      --check-batch 64 --check-buckets 9
      # predicts the 2-process loopback run from its serial allreduce time (overlap off)
"""
import argparse


def ring_allreduce_seconds(nodes, nbytes, bandwidth, latency, buckets):
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) * latency * buckets + 2 * (nodes - 1) / nodes * nbytes / bandwidth


def exposed_seconds(t_ar, t_compute, buckets):
    t_backward = 2.0 / 3.0 * t_compute
    return max(t_ar / buckets, t_ar - (1 - 1.0 / buckets) * t_backward)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--params", type=float, default=43_590_336, help="gradient floats (IR-50)")
    p.add_argument("--embedding", type=int, default=512)
    p.add_argument("--batch", type=int, default=128, help="images per node per step")
    p.add_argument("--bucket-mb", type=float, default=4.0)
    p.add_argument("--latency-us", type=float, default=30.0, help="per message (TCP over Ethernet)")
    p.add_argument("--link-efficiency", type=float, default=0.8,
                   help="fraction of the line rate an allreduce reaches")
    p.add_argument("--node-ips", type=float, nargs="+", default=[5.88, 150.0],
                   help="training images/s of one node: measured IR-50 on this 2-core VM "
                        "(issue 20's table: 5.88), and an assumed 64-core node (~25x)")
    p.add_argument("--check-params", type=float)
    p.add_argument("--check-serial-ms", type=float, help="measured allreduce ms/step, overlap off")
    p.add_argument("--check-compute-ips", type=float, help="measured 1-process img/s at 1 thread")
    p.add_argument("--check-batch", type=int)
    p.add_argument("--check-buckets", type=int)
    a = p.parse_args()

    nbytes = 4 * a.params
    buckets = max(1, round(nbytes / (a.bucket_mb * 2**20)))
    print(f"IR-50 gradients: {a.params / 1e6:.1f} M floats = {nbytes / 2**20:.0f} MiB in "
          f"{buckets} buckets; {a.batch} images per node per step; Partial FC head (sharded)\n")
    print("| node (images/s alone) | network | nodes | allreduce s | exposed s | images/s | "
          "efficiency |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for ips in a.node_ips:
        t_c = a.batch / ips
        for gbe in (10, 25, 100):
            bandwidth = gbe * 1e9 / 8 * a.link_efficiency
            for nodes in (8, 32, 128):
                t_ar = ring_allreduce_seconds(nodes, nbytes, bandwidth, a.latency_us * 1e-6,
                                              buckets)
                gather = 2 * (nodes - 1) / nodes * nodes * a.batch * a.embedding * 4 / bandwidth
                exposed = exposed_seconds(t_ar, t_c, buckets) + gather
                step = t_c + exposed
                print(f"| {ips:g} | {gbe} GbE | {nodes} | {t_ar:.3f} | {exposed:.3f} | "
                      f"{nodes * a.batch / step:,.0f} | {t_c / step:.0%} |")

    if a.check_params and a.check_serial_ms and a.check_compute_ips and a.check_batch:
        # Loopback, 2 processes x 1 thread: the serial (overlap off) allreduce time measures the
        # effective bandwidth; the model then predicts the overlapped run.
        k = a.check_buckets or 1
        t_ar = a.check_serial_ms / 1e3
        t_c = (a.check_batch / 2) / a.check_compute_ips  # each process computes half the batch
        exposed = exposed_seconds(t_ar, t_c, k)
        print(f"\ncheck, 2 processes on loopback: allreduce {t_ar * 1e3:.1f} ms of "
              f"{4 * a.check_params / 2**20:.0f} MiB (effective "
              f"{4 * a.check_params / t_ar / 2**30:.2f} GiB/s), compute {t_c:.2f} s per step")
        print(f"  predicted with overlap: {exposed * 1e3:.1f} ms exposed, "
              f"{a.check_batch / (t_c + exposed):.1f} images/s; without: "
              f"{a.check_batch / (t_c + t_ar):.1f} images/s")


if __name__ == "__main__":
    main()
