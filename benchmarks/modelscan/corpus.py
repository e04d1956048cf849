"""Write the side-by-side corpus: malicious and benign model files in every format Garrison reads.

Every file is built by the test suite's own generators (nothing is downloaded, nothing is ever
loaded): ``tests/supplychain/malicious.py`` (80 malicious pickles with harmless payloads, 43 benign
files including real torch.save and scikit-learn pickles), ``tests/supplychain/containers`` (real
and tampered PyTorch zips, legacy tar checkpoints, NumPy, compressed joblib) and
``tests/supplychain/formats/builders.py`` (Keras, ONNX, safetensors, GGUF, chat templates).

Files keep the extension their format implies (``.pkl``, ``.pt``, ``.joblib``, ``.npy``, ...), since
most peers pick a scanner by extension. The raw pickles are *also* written a second time under
non-standard extensions (none, ``.model``, ``.sav``, ``.p``, ``.weights``) as group
``nonstandard-ext``, the way pickles turn up in the wild.

``manifest.json`` maps each file (relative path) to its label (malicious/benign), technique family,
advisory, format, group, and the Garrison rules the generator expects.

Run: ``.venv/bin/python benchmarks/modelscan/corpus.py [--out DIR]`` (needs Garrison's dev venv:
torch, scikit-learn, joblib).
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_OUT = HERE.parent / ".work" / "modelscan-corpus"
CANARY = Path("/tmp/garrison-modelscan-canary-never-created")
"""Where every malicious payload would write if it ever ran; checked after each run."""

NONSTANDARD_EXTENSIONS = ("", ".model", ".sav", ".p", ".weights")
EXTENSION = {"pickle": ".pkl", "joblib": ".joblib", "pytorch-zip": ".pt", "pytorch-legacy": ".pt"}

for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)


@dataclass
class Item:
    """One corpus file before it is written."""

    path: str
    data: bytes
    label: str
    technique: str
    group: str
    format: str
    advisory: str = ""
    expected_rules: list[str] = field(default_factory=list)
    sample: str = ""
    notes: str = ""

    def manifest(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "technique": self.technique,
            "group": self.group,
            "format": self.format,
            "advisory": self.advisory,
            "expected_rules": self.expected_rules,
            "sample": self.sample or Path(self.path).name,
            "notes": self.notes,
            "size": len(self.data),
        }


# -- pickles from tests/supplychain/malicious.py -------------------------------------------------------
def _pickle_items(scratch: Path) -> list[Item]:
    from tests.supplychain.containers.zipcraft import Entry, build_zip
    from tests.supplychain.malicious import benign_samples, malicious_samples

    items: list[Item] = []
    malicious = malicious_samples(CANARY)
    benign = benign_samples(scratch)
    for index, sample in enumerate(malicious + benign):
        label = "benign" if sample.technique == "benign" else "malicious"
        common = {
            "label": label,
            "technique": sample.technique,
            "advisory": sample.advisory,
            "expected_rules": sorted(sample.expected_rules),
            "sample": sample.name,
            "notes": sample.notes,
        }
        ext = EXTENSION[sample.format]
        group = "raw-pickle" if sample.format == "pickle" else sample.format
        path = f"{group}/{sample.name}{ext}"
        items.append(Item(path=path, data=sample.data, group=group, format=sample.format, **common))
        if sample.format != "pickle":
            continue
        odd = NONSTANDARD_EXTENSIONS[index % len(NONSTANDARD_EXTENSIONS)]
        items.append(
            Item(
                path=f"nonstandard-ext/{sample.name}{odd}",
                data=sample.data,
                group="nonstandard-ext",
                format="pickle",
                **common,
            )
        )
        if label == "malicious":
            # The same payload as the data.pkl of an ordinary, well-formed PyTorch zip checkpoint.
            blob = build_zip(
                [
                    Entry(name="archive/data.pkl", data=sample.data),
                    Entry(name="archive/byteorder", data=b"little"),
                    Entry(name="archive/version", data=b"3\n"),
                ],
                zip64=False,
            )
            items.append(
                Item(
                    path=f"torch-zip-wrapped/{sample.name}.pt",
                    data=blob,
                    group="torch-zip-wrapped",
                    format="pytorch-zip",
                    **common,
                )
            )
    return items


# -- containers from tests/supplychain/containers --------------------------------------------------------
def _container_items(scratch: Path) -> list[Item]:
    from tests.supplychain.containers.test_container_detectors import benign_files, malicious_files
    from tests.supplychain.containers.zipcraft import Entry, build_zip

    items: list[Item] = []
    good = scratch / "containers-benign"
    bad = scratch / "containers-malicious"
    good.mkdir()
    bad.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in benign_files(good):
            items.append(
                Item(
                    path=f"containers/benign-{path.name}",
                    data=path.read_bytes(),
                    label="benign",
                    technique="benign",
                    group="containers",
                    format=_container_format(path.name),
                )
            )
        for name, path in sorted(malicious_files(bad, CANARY).items()):
            items.append(
                Item(
                    path=f"containers/evil-{name}",
                    data=path.read_bytes(),
                    label="malicious",
                    technique="container-evasion" if name in _EVASIONS else "container-payload",
                    group="containers",
                    format=_container_format(name),
                    expected_rules=["GAR-PKL-001"],
                    notes=_EVASIONS.get(name, "os.system payload in an ordinary container"),
                )
            )
    code = b"def forward(self, x):\n    y = torch.from_file('/etc/passwd', True, 100)\n    return x\n"
    scripted = build_zip(
        [
            Entry(name="m/data.pkl", data=pickle.dumps({})),
            Entry(name="m/code/__torch__/m.py", data=code),
            Entry(name="m/constants.pkl", data=pickle.dumps(())),
            Entry(name="m/version", data=b"3\n"),
        ]
    )
    items.append(
        Item(
            path="containers/evil-torchscript-from-file.pt",
            data=scripted,
            label="malicious",
            technique="torchscript-code",
            group="containers",
            format="torchscript",
            expected_rules=["GAR-PT-001"],
            notes="TorchScript code reads /etc/passwd with torch.from_file",
        )
    )
    return items


_EVASIONS = {
    "crc.pt": "data.pkl with a wrong CRC (torch does not check it; zipfile refuses)",
    "names.pt": "local header names a different member than the central directory",
    "case.pt": "member names in mixed case, deflated",
    "renamed.pt": "payload in a member not named data.pkl",
    "junk.pt": "junk before the zip: the file starts as a pickle",
    "flags.pt": "encryption bit set in the local header only",
    "legacy-tar.pt": "legacy tar checkpoint (torch < 0.1.10)",
}


def _container_format(name: str) -> str:
    if name.endswith(".joblib"):
        return "joblib"
    if name.endswith(".npy"):
        return "numpy"
    if name.endswith(".npz"):
        return "numpy-npz"
    if "legacy" in name:
        return "pytorch-legacy"
    if "scripted" in name:
        return "torchscript"
    return "pytorch-zip"


# -- other formats from tests/supplychain/formats/builders.py ---------------------------------------
def _format_items() -> list[Item]:
    from tests.supplychain.formats import builders as b

    def lambda_v3() -> dict[str, Any]:
        code = {"code": b.lambda_code(), "defaults": None, "closure": None}
        function = {"class_name": "__lambda__", "config": code}
        return b.keras_layer("Lambda", {"name": "lambda", "function": function, "arguments": {}})

    def ref(module: str, name: str, **extra: Any) -> dict[str, Any]:
        function = {"module": module, "class_name": "function", "config": name, "registered_name": "function"}
        return b.keras_layer("Lambda", {"name": name, "function": function, **extra})

    def keras(*layers: dict[str, Any]) -> bytes:
        return b.keras_zip(b.keras_model(*layers))

    def onnx_external(where: str) -> bytes:
        tensor = b.onnx_tensor("w", {"location": where, "length": "8"})
        return b.onnx_model([b.onnx_node("Relu")], initializers=[tensor])

    legacy_lambda = {
        "class_name": "Lambda",
        "config": {"name": "l", "function": [b.lambda_code(), None, None], "function_type": "lambda"},
    }
    legacy_dense = {"class_name": "Dense", "config": {"name": "d", "units": 2}}
    popen = {
        "module": "subprocess",
        "class_name": "Popen",
        "config": {"args": ["touch", str(CANARY)]},
        "registered_name": None,
    }
    get_file = ref(
        "keras.src.utils.file_utils",
        "get_file",
        arguments={"origin": "http://127.0.0.1/x", "fname": str(CANARY)},
    )
    lookup = b.keras_layer("StringLookup", {"name": "lookup", "vocabulary": "/etc/passwd"})
    tfsm = b.keras_layer(
        "TFSMLayer", {"name": "t", "filepath": "/tmp/evil_savedmodel", "call_endpoint": "serve"}
    )
    unsafe_mode = ref("keras.config", "enable_unsafe_deserialization")
    custom_op = [b.onnx_node("Relu"), b.onnx_node("Backdoor", "evil.ops")]
    contrib_op = [b.onnx_node("FusedMatMul", "com.microsoft")]
    arch = b.gguf_kv_string("general.architecture", "llama")
    llama = [arch, b.gguf_kv_string("tokenizer.chat_template", b.LLAMA3_TEMPLATE)]
    chatml = [b.gguf_kv_string("tokenizer.chat_template", b.CHATML_TEMPLATE)]
    ssti = [arch, b.gguf_kv_string("tokenizer.chat_template", b.CVE_2024_34359_TEMPLATE)]
    tool_use = [
        *llama,
        b.gguf_kv_string("tokenizer.chat_template.tool_use", "{{ cycler.__init__.__globals__ }}"),
    ]
    sft_header = {
        "__metadata__": {"format": "pt"},
        "embed.weight": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
    }
    sft_duplicate = (
        b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
        b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    )
    clean_tokenizer = {"chat_template": b.CHATML_TEMPLATE, "model_max_length": 4096}
    evil_tokenizer = {
        "bos_token": "<s>",
        "chat_template": [
            {"name": "default", "template": b.LLAMA3_TEMPLATE},
            {"name": "rag", "template": b.CVE_2024_34359_TEMPLATE},
        ],
    }

    def h5(*layers: dict[str, Any], pad: int = 2048) -> bytes:
        return b.hdf5_with_config(
            {"class_name": "Sequential", "config": {"name": "s", "layers": list(layers)}}, pad=pad
        )

    ok, bad = "benign", "malicious"
    table: list[tuple[str, bytes, str, str, str, str, str]] = [
        # path, data, label, technique, format, advisory, expected rule
        ("keras/benign-dense.keras", keras(b.dense(), b.dense("dense_1")), ok, ok, "keras", "", ""),
        ("keras/benign-dense-legacy.h5", h5(legacy_dense), ok, ok, "keras-h5", "", ""),
        ("keras/evil-lambda-bytecode.keras", keras(b.dense(), lambda_v3()), bad, "keras-lambda", "keras",
         "CVE-2024-3660", "GAR-KRS-001"),
        ("keras/evil-lambda-legacy.h5", h5(legacy_lambda, pad=5000), bad, "keras-lambda", "keras-h5",
         "CVE-2025-9905", "GAR-KRS-001"),
        ("keras/evil-builtins-exec-ref.keras", keras(ref("builtins", "exec", arguments={})), bad,
         "keras-gadget", "keras", "CVE-2025-1550", "GAR-KRS-002"),
        ("keras/evil-subprocess-layer.keras", keras(popen), bad, "keras-gadget", "keras", "CVE-2025-1550",
         "GAR-KRS-002"),
        ("keras/evil-enable-unsafe.keras", keras(unsafe_mode, lambda_v3()), bad, "keras-gadget", "keras",
         "CVE-2025-9906", "GAR-KRS-003"),
        ("keras/evil-get-file.keras", keras(get_file), bad, "keras-gadget", "keras", "CVE-2025-8747",
         "GAR-KRS-003"),
        ("keras/evil-stringlookup-path.keras", keras(lookup), bad, "keras-file-read", "keras",
         "CVE-2025-12058", "GAR-KRS-005"),
        ("keras/evil-tfsm-layer.keras", keras(tfsm), bad, "keras-file-read", "keras", "CVE-2026-1462",
         "GAR-KRS-005"),
        ("keras/evil-layer-name-traversal.keras", keras(b.dense("../../../tmp/x")), bad, "path-traversal",
         "keras", "CVE-2026-12479", "GAR-KRS-102"),
        ("onnx/benign-plain.onnx", b.onnx_model([b.onnx_node("MatMul")], initializers=[b.onnx_tensor("w")]),
         ok, ok, "onnx", "", ""),
        ("onnx/benign-com-microsoft.onnx", b.onnx_model(contrib_op, opsets=("", "com.microsoft")), ok, ok,
         "onnx", "", ""),
        ("onnx/evil-custom-op-domain.onnx", b.onnx_model(custom_op, opsets=("", "evil.ops")), bad,
         "onnx-custom-op", "onnx", "", "GAR-ONNX-001"),
        ("onnx/evil-external-dotdot.onnx", onnx_external("../../../etc/passwd"), bad, "path-traversal",
         "onnx", "CVE-2022-25882", "GAR-ONNX-102"),
        ("onnx/evil-external-absolute.onnx", onnx_external("/etc/passwd"), bad, "path-traversal", "onnx",
         "CVE-2022-25882", "GAR-ONNX-101"),
        ("onnx/evil-external-prefix-dotdot.onnx", onnx_external("weights/../../../etc/shadow"), bad,
         "path-traversal", "onnx", "CVE-2024-27318", "GAR-ONNX-102"),
        ("safetensors/benign-weights.safetensors", b.safetensors_bytes(sft_header, bytes(48)), ok, ok,
         "safetensors", "", ""),
        ("safetensors/evil-duplicate-tensor-names.safetensors", b.safetensors_bytes(sft_duplicate, bytes(8)),
         bad, "parser-differential", "safetensors", "", "GAR-SFT-102"),
        ("gguf/benign-llama3-template.gguf", b.gguf_bytes(llama, [("embd", [4, 3], 0, 0)], bytes(48)), ok, ok,
         "gguf", "", ""),
        ("gguf/benign-chatml-template.gguf", b.gguf_bytes(chatml), ok, ok, "gguf", "", ""),
        ("gguf/evil-template-ssti.gguf", b.gguf_bytes(ssti), bad, "template-injection", "gguf",
         "CVE-2024-34359", "GAR-GGUF-001"),
        ("gguf/evil-tool-use-template.gguf", b.gguf_bytes(tool_use), bad, "template-injection", "gguf", "",
         "GAR-GGUF-001"),
        ("gguf/evil-dims-overflow.gguf", b.gguf_bytes(llama, [("w", [2**40, 2**40], 0, 0)], bytes(64)), bad,
         "memory-safety", "gguf", "CVE-2026-33298", "GAR-GGUF-102"),
        ("templates/benign/tokenizer_config.json", json.dumps(clean_tokenizer).encode(), ok, ok,
         "tokenizer-config", "", ""),
        ("templates/evil/tokenizer_config.json", json.dumps(evil_tokenizer).encode(), bad,
         "template-injection", "tokenizer-config", "CVE-2024-34359", "GAR-TPL-001"),
        ("templates/evil/chat_template.jinja", b.CVE_2024_34359_TEMPLATE.encode(), bad, "template-injection",
         "jinja", "CVE-2024-34359", "GAR-TPL-001"),
    ]  # fmt: skip
    return [
        Item(
            path=path,
            data=data,
            label=label,
            technique=technique,
            group=path.split("/")[0],
            format=fmt,
            advisory=advisory,
            expected_rules=[rule] if rule else [],
        )
        for path, data, label, technique, fmt, advisory, rule in table
    ]


def _independent_items(scratch: Path) -> list[Item]:
    import extras

    items = [
        Item(path=f"independent/{name}.pkl", data=data, label="malicious", technique="independent-gadget",
             group="independent", format="pickle", notes=notes)
        for name, data, notes in extras.malicious(CANARY)
    ]  # fmt: skip
    for name, data, notes in extras.benign(scratch):
        fmt = EXTENSION_FORMAT.get(Path(name).suffix, "pickle")
        if name.startswith("torch") and "legacy" in name:
            fmt = "pytorch-legacy"
        items.append(Item(path=f"independent/benign-{name}", data=data, label="benign", technique="benign",
                          group="independent", format=fmt, notes=notes))  # fmt: skip
    return items


EXTENSION_FORMAT = {".pkl": "pickle", ".joblib": "joblib", ".pt": "pytorch-zip", ".bin": "pytorch-zip",
                    ".npy": "numpy"}  # fmt: skip


def build_items() -> list[Item]:
    """Every corpus file, in memory."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        (scratch / "pickles").mkdir()
        (scratch / "extras").mkdir()
        items = _pickle_items(scratch / "pickles") + _container_items(scratch) + _format_items()
        items += _independent_items(scratch / "extras")
    seen: set[str] = set()
    for item in items:
        if item.path in seen:
            raise ValueError(f"duplicate corpus path {item.path}")
        seen.add(item.path)
    return items


def write_corpus(out: Path) -> dict[str, dict[str, Any]]:
    """Write every file under ``out`` (emptied first) and ``out/manifest.json``; return the manifest."""
    if out.exists():
        shutil.rmtree(out)
    files = out / "files"
    files.mkdir(parents=True)
    manifest: dict[str, dict[str, Any]] = {}
    for item in build_items():
        path = files / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.data)
        manifest[item.path] = item.manifest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    if CANARY.exists():
        raise RuntimeError(f"{CANARY} exists: a payload ran while the corpus was built")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    manifest = write_corpus(args.out)
    labels = [entry["label"] for entry in manifest.values()]
    print(
        f"{len(manifest)} files ({labels.count('malicious')} malicious, {labels.count('benign')} benign) "
        f"in {args.out / 'files'}"
    )


if __name__ == "__main__":
    main()
