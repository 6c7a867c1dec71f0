"""Class-conditional MNIST: CAS (classification accuracy score) of a generator, and its sample grid.

    RESGAN_DATA=../shared/data python benchmarks/mnist_cas.py --model mnist --n 10000

A small CNN trained on real MNIST train (cached, see resgan.metrics.cas) classifies ``--n``
class-balanced generated digits; CAS is its accuracy against the labels they were generated
for. Target >= 95%, goal >= 98%.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from resgan.evaluate import cas_for_generator, generator_data_config
from resgan.gan.sampling import generate
from resgan.report import make_grid, save_png
from resgan.zoo import load_generator, resolve_file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["mnist"], help="built-in name(s), run directories or checkpoints")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--data-path", default=None, help="MNIST folder (default: $RESGAN_DATA/mnist)")
    p.add_argument("--grid", default=None, help="write a 10x10 grid (row = class) here")
    a = p.parse_args()
    print("| model | G steps | CAS (n) | classifier accuracy on held-out real |")
    print("|---|---|---|---|")
    for model in a.model:
        G, meta = load_generator(model)
        data = generator_data_config(meta)
        path = a.data_path or os.path.join(os.environ.get("RESGAN_DATA", "../shared/data"), "mnist")
        data = dataclasses.replace(data, path=path, split="train", limit=None)
        r = cas_for_generator(model, n=a.n, data=data)
        print(f"| {model} ({resolve_file(model).name}) | {meta['step']} | {100 * r['cas']:.2f}% ({r['n']}) | "
              f"{100 * r['real_accuracy']:.2f}% |")
        if a.grid:
            seeds = [c * 10 + k for k in range(10) for c in range(10)]  # row k: class k
            images, _ = generate(G, seeds, None)
            order = sorted(range(100), key=lambda i: (seeds[i] % 10, seeds[i]))
            save_png(make_grid(images[order], 10), Path(a.grid))


if __name__ == "__main__":
    main()
