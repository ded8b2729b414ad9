"""mmfir.measure: how well and how fast, measured. Needs the runtime only (and numpy, PIL).

- accuracy: ``checks`` (the contract's comparisons), ``metrics`` (PSNR, SSIM), ``compare`` (every
  backend against the torch reference), ``evaluate`` and ``demo`` (restoration quality on degraded photos)
- speed: ``bench`` with ``bench_worker`` (one process per backend), ``flops``, ``machine``, ``bench_report``
- data: ``photos`` (scikit-image's bundled photographs) and ``degradations`` (the synthetic degradations
  training and evaluation share)

Training (``mmfir.models.train``) imports the data and evaluation modules from here without pulling in
the command line. Nothing here imports torch; the torch reference backend is reached by name through
the runtime's backend registry.
"""
