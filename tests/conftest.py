"""Suite-wide settings.

torch runs single-threaded in the tests: with two threads on a 2-core machine that is also running a
TVM build or another test process, torch's spinning worker threads slow a small training step
five-fold (measured: 4.7 s vs 27 s for one epoch of the training test).
"""

import torch

torch.set_num_threads(1)
