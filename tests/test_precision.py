"""model.backbone_autocast=auto picks the precision that is fast on the device the run uses, and
every run records what it ran with."""

from __future__ import annotations

import pytest
import torch
from helpers import quiet_trainer, random_image_datamodule, tiny_module

from leo_lightning.models import Conv4, Flatten, precision

CPU = torch.device("cpu")
SHAPE = (1, 28, 28)


def resolve(setting="auto", device=CPU, channels_last=True):
    return precision.resolve(setting, device, Conv4(channels=8), SHAPE, channels_last)


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """A CPU whose bf16 support and probe timings the test decides; counts the probes."""
    monkeypatch.setenv("LEO_CACHE_DIR", str(tmp_path))
    state = {"native": True, "fp32_ms": 100.0, "bf16_ms": 50.0, "probes": 0}

    def cpu_info():
        return {
            "cpu_model": "test CPU",
            "cpu_capability": "AVX512" if state["native"] else "AVX2",
            "cpu_native_bf16": state["native"],
            "ATEN_CPU_CAPABILITY": None,
            "ONEDNN_MAX_CPU_ISA": None,
            "torch_threads": 2,
        }

    def probe(backbone, input_shape, channels_last):
        state["probes"] += 1
        return {"fp32_ms": state["fp32_ms"], "bf16_ms": state["bf16_ms"]}

    monkeypatch.setattr(precision, "cpu_info", cpu_info)
    monkeypatch.setattr(precision, "_probe", probe)
    return state


@pytest.mark.parametrize("setting", ["bf16", "fp16", None])
def test_an_explicit_setting_is_kept_without_probing(cpu, setting):
    chosen = resolve(setting)
    assert chosen.autocast == setting and cpu["probes"] == 0
    assert chosen.reason == "set by model.backbone_autocast"


def test_auto_is_fp32_without_a_probe_on_a_cpu_without_native_bf16(cpu):
    cpu["native"] = False
    chosen = resolve()
    assert chosen.autocast is None and cpu["probes"] == 0
    assert chosen.describe() == "backbone precision: fp32 (CPU AVX2, no native bf16)"


def test_auto_is_bf16_where_the_probe_finds_it_faster(cpu):
    chosen = resolve()
    assert chosen.autocast == "bf16" and chosen.dtype is torch.bfloat16
    assert "probe: bf16 50 ms, fp32 100 ms" in chosen.reason


def test_auto_is_fp32_where_native_bf16_is_still_slow(cpu):
    """ONEDNN_MAX_CPU_ISA or a hypervisor can make a bf16-capable CPU emulate bf16."""
    cpu["bf16_ms"] = 700.0
    chosen = resolve()
    assert chosen.autocast is None and "bf16 not faster" in chosen.reason


def test_auto_keeps_fp32_when_bf16_is_only_slightly_faster(cpu):
    cpu["bf16_ms"] = 95.0
    assert resolve().autocast is None


def test_the_probe_is_cached_per_machine_and_backbone(cpu, tmp_path):
    first, again = resolve(), resolve()
    assert first == again and cpu["probes"] == 1
    assert (tmp_path / "precision_probe.json").is_file()
    resolve(channels_last=False)  # another memory format is another measurement
    assert cpu["probes"] == 2


def test_an_unwritable_cache_only_means_probing_again(cpu, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LEO_CACHE_DIR", str(blocker))
    assert resolve().autocast == "bf16" and resolve().autocast == "bf16"
    assert cpu["probes"] == 2


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16"), (False, None)])
def test_auto_on_cuda_is_bf16_only_where_the_gpu_has_it(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    chosen = resolve(device=torch.device("cuda", 0))
    assert chosen.autocast == expected and "CUDA Test GPU" in chosen.reason


def test_auto_elsewhere_is_fp32():
    assert resolve(device=torch.device("mps")).autocast is None


def test_auto_is_fp32_without_a_probe_for_a_backbone_without_parameters(cpu):
    # pre-computed features (model/backbone=flatten): the real probe cannot even take a step
    chosen = precision.resolve("auto", CPU, Flatten(), (64,), channels_last=False)
    assert chosen.autocast is None and cpu["probes"] == 0


def test_the_real_probe_is_never_run_on_a_backbone_without_parameters(monkeypatch, tmp_path):
    monkeypatch.setenv("LEO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precision, "cpu_info", lambda: {"cpu_native_bf16": True})
    assert precision.resolve("auto", CPU, Flatten(), (64,), False).autocast is None


def test_an_unknown_setting_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"model.backbone_autocast='bf32'.*'auto', 'bf16', 'fp16'"):
        tiny_module(backbone_autocast="bf32")


def test_the_real_probe_changes_neither_the_global_rng_nor_the_backbone():
    backbone = Conv4(channels=8)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    rng = torch.get_rng_state()
    result = precision._probe(backbone, SHAPE, channels_last=True)
    assert result["fp32_ms"] > 0 and result["bf16_ms"] > 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


def test_cpu_info_names_what_the_choice_depends_on():
    info = precision.cpu_info()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(info["cpu_native_bf16"], bool) and info["torch_threads"] >= 1


def test_a_trainer_resolves_auto_once_at_setup_and_the_checkpoint_records_it(cpu, tmp_path):
    cpu["native"] = False
    module = tiny_module(backbone_autocast="auto")
    assert module.net.precision is None
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=random_image_datamodule())
    assert module.net.precision == precision.BackbonePrecision(None, "CPU AVX2, no native bf16")
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    stored = torch.load(tmp_path / "x.ckpt", weights_only=True)["leo_lightning"]
    assert stored["backbone_precision"] == {
        "name": "fp32",
        "autocast": None,
        "reason": "CPU AVX2, no native bf16",
    }


def test_used_without_a_trainer_auto_resolves_on_the_first_forward(cpu):
    from helpers import random_episode

    module = tiny_module(backbone_autocast="auto")
    module(random_episode())
    assert module.net.precision.autocast == "bf16"


def test_the_model_defaults_to_auto_precision_and_channels_last():
    from leo_lightning.training.settings import LEOSettings

    assert LEOSettings().backbone_autocast == "auto" and LEOSettings().channels_last is True
