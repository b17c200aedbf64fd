"""Every random stream of the compiled CPU engines, one module each.

* :mod:`.keys`: the run seed as the kernels' 64-bit key;
* :mod:`.aes`: AES-128 in counter mode, the multispin Ising kernels' words (the C kernels
  compute it; this is the reference they are checked against);
* :mod:`.philox`: Philox4x32-10, the per-site Ising kernel's draws and the replica-exchange
  uniforms (the C kernels and Triton compute the same function);
* :mod:`.splitmix`: splitmix64, one sequential stream per replica (the cluster and the
  cellular Potts kernels).
"""
