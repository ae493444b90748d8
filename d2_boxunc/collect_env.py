"""Print the versions and build facts a bug report needs: ``python -m d2_boxunc.collect_env``."""

import os
import platform
import sys

from tabulate import tabulate


def collect_env_info() -> str:
    import torch
    import torchvision

    rows = [
        ("Python", sys.version.split()[0] + f" ({platform.platform()})"),
        ("torch", f"{torch.__version__} @ {os.path.dirname(torch.__file__)}"),
        ("torch CUDA", f"built {torch.version.cuda}, available: {torch.cuda.is_available()}"),
        ("torchvision", torchvision.__version__),
    ]
    try:
        import detectron2

        rows.append(
            ("detectron2", f"{detectron2.__version__} @ {os.path.dirname(detectron2.__file__)}")
        )
        try:
            from detectron2 import _C  # noqa: F401

            rows.append(("detectron2._C", "loaded"))
        except ImportError:
            rows.append(("detectron2._C", "not built (pure-Python install; its own ops unused)"))
    except ImportError as e:
        rows.append(("detectron2", f"NOT importable: {e}"))

    import d2_boxunc
    from d2_boxunc import _extension

    rows.append(("d2_boxunc", f"{d2_boxunc.__version__} @ {os.path.dirname(d2_boxunc.__file__)}"))
    if _extension.has_ops():
        cv = _extension.cuda_version()
        cuda = "CPU only" if cv < 0 else f"with CUDA {cv // 1000}.{cv % 1000 // 10}"
        rows.append(("d2_boxunc._C", f"built, {cuda}"))
        rows.append(("d2_boxunc._C features", ", ".join(_extension.build_features()) or "-"))
    else:
        rows.append(("d2_boxunc._C", f"not built ({_extension._LOAD_ERROR})"))
    from d2_boxunc.data.synthetic import default_root

    rows.append(("synthetic data root", default_root()))
    rows.append(("CPU cores", str(os.cpu_count())))
    return tabulate(rows, tablefmt="simple")


if __name__ == "__main__":
    print(collect_env_info())
