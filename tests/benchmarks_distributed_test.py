"""benchmarks/distributed.py without running a cluster: the socket counters and the table."""

import subprocess
from unittest import mock

from tests import testing

from benchmarks import distributed as bench

# `ss -tinH state established` as printed here: gRPC's dual-stack sockets and a plain one.
SS_OUTPUT = """\
0      0      [::ffff:127.0.0.1]:37022 [::ffff:127.0.0.1]:5000
\t cubic rto:204 bytes_sent:10 bytes_acked:11 bytes_received:300 segs_out:6
0      0      [::ffff:127.0.0.1]:5000 [::ffff:127.0.0.1]:37022
\t cubic rto:204 bytes_sent:300 bytes_acked:301 bytes_received:10 segs_out:6
0      0      127.0.0.1:40000 127.0.0.1:6000
\t cubic rto:204 bytes_acked:1 bytes_received:7000 segs_out:6
0      0      10.0.0.2:22 10.0.0.9:50000
\t cubic rto:204 bytes_acked:1 bytes_received:99999 segs_out:6
"""


def _record():
  configs = {
      "single": {"examples_per_sec": 10000.0, "bytes_per_step": 0.0, "processes": 1},
      "mirrored2": {"examples_per_sec": 9000.0, "bytes_per_step": 2e6, "processes": 2},
      "ps2": {"examples_per_sec": 8000.0, "bytes_per_step": 2 * 4 * 1000 + 2.5e5,
              "processes": 5},
      "ps4": {"error": "exit code 1; last lines:\nboom", "processes": 7},
  }
  return {"time": "T", "machine": "M", "git_revision": "abc", "batch_size": 4096,
          "layout": {"dense_params": 1000, "touched_rows": 1000.0, "embedding_dim": 16},
          "configs": configs}


class DistributedBenchmarkTest(testing.TestCase):

  def test_counts_the_bytes_received_on_the_cluster_ports_only(self):
    done = subprocess.CompletedProcess([], 0, stdout=SS_OUTPUT)
    with mock.patch.object(bench.subprocess, "run", return_value=done):
      self.assertEqual(bench.loopback_bytes({5000}), 310)
      self.assertEqual(bench.loopback_bytes({5000, 6000}), 7310)
      self.assertEqual(bench.loopback_bytes({7000}), 0)

  def test_table_splits_ps_traffic_into_dense_and_tables(self):
    text = bench.render(_record())
    # tables = 258,000 - 8,000 bytes; touched = 1000 rows x 16 x 4 = 64,000 bytes -> 3.91.
    self.assertIn("| ps2 | 5 | 8,000 | 0.80x | 0.26 MB | 0.01 MB | 0.25 MB | 0.06 MB | 3.91 |",
                  text)
    self.assertIn("| single | 1 | 10,000 | 1.00x | 0 |", text)
    self.assertIn("| ps4 | - | failed: exit code 1; last lines: |", text)
    self.assertIn("not scaling figures", text)

  def test_layout_is_the_throughput_benchmark_layout(self):
    overrides = bench.layout_overrides(4096, 10000, 250000, 32, 8)
    for item in ("input.batch_size=4096", "data.hash_buckets=10000",
                 "model.params.tower.dims=[256,256,256]", "model.params.num_cross_layers=3",
                 "model.params.embedding.dim=16", "trainer.max_steps=32"):
      self.assertIn(item, overrides)
