from __future__ import annotations

import io
import pickle

import pytest
import torch
from transformers import HfArgumentParser

from flatmtl import FlatMTLConfig


def test_command_line_flags(tmp_path):
    parser = HfArgumentParser(FlatMTLConfig)
    (args,) = parser.parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--no-flat",
            "--aggregator",
            "CAGrad",
            "--aggregator_kwargs",
            '{"c": 0.5}',
            "--rho_shared",
            "0.1",
            "--rho_task",
            "0.02",
            "--adaptive",
            "--flat_strategy",
            "direct",
            "--shared_patterns",
            "att",
            "gate",
        ]
    )
    assert args.flat is False and args.aggregator == "cagrad"
    assert args.aggregator_kwargs == {"c": 0.5}
    assert (args.rho_shared, args.rho_task, args.adaptive) == (0.1, 0.02, True)
    assert args.flat_strategy == "direct" and args.shared_patterns == ["att", "gate"]
    settings = args.flat_settings()
    assert settings.strategy == "direct" and settings.rho_task == 0.02
    (default,) = parser.parse_args_into_dataclasses(["--output_dir", str(tmp_path)])
    assert default.flat is True and default.flat_strategy == "individual"
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--flat_strategy", "sideways"])


def test_aggregator_kwargs_must_be_a_mapping(tmp_path):
    with pytest.raises(ValueError, match="`aggregator_kwargs` must be a dict"):
        FlatMTLConfig(output_dir=str(tmp_path), aggregator_kwargs=[1, 2])


def test_pickled_arguments_never_carry_the_hub_token(tmp_path):
    args = FlatMTLConfig(output_dir=str(tmp_path), hub_token="hf_not_a_real_token_123")
    buffer = io.BytesIO()
    torch.save(args, buffer)  # what the Trainer writes as training_args.bin
    assert b"hf_not_a_real_token_123" not in buffer.getvalue()
    restored = pickle.loads(pickle.dumps(args))
    assert restored.hub_token is None and restored.rho_shared == args.rho_shared
    assert args.hub_token == "hf_not_a_real_token_123"  # the live object keeps it


def test_aggregator_kwargs_with_bad_json_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"`aggregator_kwargs` must be a JSON object.*double"):
        FlatMTLConfig(output_dir=str(tmp_path), aggregator="cagrad", aggregator_kwargs="{c:0.4}")
    parsed = FlatMTLConfig(
        output_dir=str(tmp_path), aggregator="cagrad", aggregator_kwargs='{"c": 1}'
    )
    assert parsed.aggregator_kwargs == {"c": 1}
