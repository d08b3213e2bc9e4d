"""Merges of LoRA adapters: exactness in ΔW space, SVD truncation, the paper's A/B averaging."""

from __future__ import annotations

import math

import pytest
import torch
from peft import LoraConfig

from lsat.adapters.model.errors import AdapterError, MergeError
from lsat.adapters.model.merging import (
    delta_weights,
    lora_pairs,
    lora_scaling,
    merge_ab_average,
    merge_delta,
    merge_svd,
)

MODULES = {
    "base_model.model.model.layers.0.self_attn.q_proj": (12, 10),
    "base_model.model.model.layers.0.self_attn.v_proj": (6, 10),
    "base_model.model.model.layers.1.self_attn.q_proj": (12, 10),
}


def random_lora(
    seed: int,
    r: int = 2,
    alpha: float = 4,
    modules: dict[str, tuple[int, int]] = MODULES,
    dtype: torch.dtype = torch.float64,
    use_rslora: bool = False,
) -> tuple[dict[str, torch.Tensor], LoraConfig]:
    """A random adapter in peft's saved layout (B non-zero, unlike a fresh peft init)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for module, (out_features, in_features) in modules.items():
        state[f"{module}.lora_A.weight"] = torch.randn(
            r, in_features, generator=generator, dtype=dtype
        )
        state[f"{module}.lora_B.weight"] = torch.randn(
            out_features, r, generator=generator, dtype=dtype
        )
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "v_proj"])
    config.use_rslora = use_rslora
    return state, config


def weighted_delta_sum(adapters, weights) -> dict[str, torch.Tensor]:
    deltas = [delta_weights(state, config) for state, config in adapters]
    return {
        module: sum(w * d[module] for w, d in zip(weights, deltas, strict=True))
        for module in deltas[0]
    }


# --- lora_pairs / delta_weights -------------------------------------------------------------


def test_lora_pairs_groups_every_module():
    state, _ = random_lora(0)
    pairs = lora_pairs(state)
    assert set(pairs) == set(MODULES)
    for module, (a, b) in pairs.items():
        assert a is state[f"{module}.lora_A.weight"]
        assert b is state[f"{module}.lora_B.weight"]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({}, "no LoRA weights"),
        ({"m.lora_A.weight": torch.ones(2, 3)}, "'m' has lora_A but no lora_B"),
        ({"m.lora_B.weight": torch.ones(3, 2)}, "'m' has lora_B but no lora_A"),
        (
            {"m.lora_A.weight": torch.ones(2, 3), "m.lora_B.weight": torch.ones(4, 3)},
            "A has 2 rows but B has 3 columns",
        ),
        (
            {"m.lora_A.weight": torch.ones(2, 3, 1, 1), "m.lora_B.weight": torch.ones(4, 2, 1, 1)},
            "only linear LoRA layers",
        ),
        ({"m.lora_magnitude_vector": torch.ones(3)}, "'m.lora_magnitude_vector' is not a LoRA"),
    ],
)
def test_lora_pairs_refuses_malformed_state(state, message):
    with pytest.raises(MergeError, match=message):
        lora_pairs(state)


@pytest.mark.parametrize(
    ("r", "alpha", "rslora", "expected"),
    [(8, 16, False, 2.0), (4, 4, False, 1.0), (16, 8, True, 2.0), (3, 6, False, 2.0)],
)
def test_lora_scaling(r, alpha, rslora, expected):
    assert lora_scaling(LoraConfig(r=r, lora_alpha=alpha, use_rslora=rslora)) == expected


def test_delta_weights_is_scaled_b_times_a():
    state, config = random_lora(1, r=3, alpha=12)
    for module, delta in delta_weights(state, config).items():
        a = state[f"{module}.lora_A.weight"]
        b = state[f"{module}.lora_B.weight"]
        torch.testing.assert_close(delta, 4.0 * b @ a)
        assert delta.shape == MODULES[module]


def test_delta_weights_refuses_config_rank_that_disagrees_with_state():
    state, _ = random_lora(1, r=3)
    with pytest.raises(MergeError, match=r"has rank 3 but config\.r is 8"):
        delta_weights(state, LoraConfig(r=8, lora_alpha=16))


# --- merge_delta ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ranks", "alphas", "weights"),
    [
        ((2, 2), (4, 4), (0.5, 0.5)),
        ((2, 4), (4, 16), (0.3, 0.7)),
        ((8, 1, 3), (16, 1, 9), (1.0, -0.5, 2.0)),
        ((2,), (4,), (0.25,)),
    ],
)
def test_merge_delta_equals_weighted_sum_of_deltas(ranks, alphas, weights):
    adapters = [
        random_lora(seed, r, a) for seed, (r, a) in enumerate(zip(ranks, alphas, strict=True))
    ]
    state, config = merge_delta(adapters, weights)
    assert config.r == sum(ranks)
    assert config.lora_alpha == config.r
    assert lora_scaling(config) == 1.0
    merged = delta_weights(state, config)
    expected = weighted_delta_sum(adapters, weights)
    assert merged.keys() == expected.keys()
    for module in expected:
        torch.testing.assert_close(merged[module], expected[module])


def test_merge_delta_handles_rslora_inputs_exactly():
    adapters = [random_lora(0, r=4, alpha=8, use_rslora=True), random_lora(1, r=4, alpha=8)]
    state, config = merge_delta(adapters, [0.5, 0.5])
    assert config.use_rslora is False
    expected = weighted_delta_sum(adapters, [0.5, 0.5])
    for module, delta in delta_weights(state, config).items():
        torch.testing.assert_close(delta, expected[module])


def test_merge_keeps_dtype_and_does_not_touch_inputs():
    adapters = [random_lora(0, dtype=torch.bfloat16), random_lora(1, dtype=torch.bfloat16)]
    before = {key: tensor.clone() for key, tensor in adapters[0][0].items()}
    state, _ = merge_delta(adapters, [0.5, 0.5])
    assert {tensor.dtype for tensor in state.values()} == {torch.bfloat16}
    for key, tensor in adapters[0][0].items():
        assert torch.equal(tensor, before[key])
    assert adapters[0][1].r == 2


# --- merge_ab_average -----------------------------------------------------------------------


def test_ab_average_differs_from_delta_merge_by_the_cross_terms():
    adapters = [random_lora(0), random_lora(1)]
    weights = [0.5, 0.5]
    ab_state, ab_config = merge_ab_average(adapters, weights)
    assert ab_config.r == 2
    ab_delta = delta_weights(ab_state, ab_config)
    exact = weighted_delta_sum(adapters, weights)
    scaling = lora_scaling(adapters[0][1])
    for module in exact:
        assert not torch.allclose(ab_delta[module], exact[module])
        (a0, b0), (a1, b1) = lora_pairs(adapters[0][0])[module], lora_pairs(adapters[1][0])[module]
        # s(w0 B0 + w1 B1)(w0 A0 + w1 A1) = Σ w_i² ΔW_i + s w0 w1 (B0 A1 + B1 A0)
        explained = (
            0.25 * scaling * b0 @ a0
            + 0.25 * scaling * b1 @ a1
            + 0.25 * scaling * (b0 @ a1 + b1 @ a0)
        )
        torch.testing.assert_close(ab_delta[module], explained)


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.2, 0.8), (1.5, -0.5)])
def test_ab_average_equals_delta_merge_for_identical_adapters_with_weights_summing_to_one(weights):
    adapter = random_lora(3)
    adapters = [adapter, adapter]
    ab_delta = delta_weights(*merge_ab_average(adapters, weights))
    exact = weighted_delta_sum(adapters, weights)
    for module in exact:
        torch.testing.assert_close(ab_delta[module], exact[module])


def disjoint_slot_adapters(seed: int) -> list[tuple[dict[str, torch.Tensor], LoraConfig]]:
    """Two rank-2 adapters using different rank slots, so that B_0 A_1 = B_1 A_0 = 0."""
    adapters = [random_lora(seed), random_lora(seed + 1)]
    for slot, (state, _) in enumerate(adapters):
        for key, tensor in state.items():
            if key.endswith("lora_A.weight"):
                tensor[1 - slot, :] = 0.0
            else:
                tensor[:, 1 - slot] = 0.0
    return adapters


def test_ab_average_equals_delta_merge_without_cross_terms_and_unit_weights():
    adapters = disjoint_slot_adapters(5)
    for weights in ([1.0, 1.0], [1.0, 0.0], [0.0, 1.0]):
        ab_delta = delta_weights(*merge_ab_average(adapters, weights))
        exact = weighted_delta_sum(adapters, weights)
        for module in exact:
            torch.testing.assert_close(ab_delta[module], exact[module])


def test_ab_average_squares_weights_even_without_cross_terms():
    adapters = disjoint_slot_adapters(5)
    ab_delta = delta_weights(*merge_ab_average(adapters, [0.5, 0.5]))
    exact = weighted_delta_sum(adapters, [0.5, 0.5])
    for module in exact:
        # Σ w_i² ΔW_i = 0.25 ΔW_0 + 0.25 ΔW_1: half the intended average.
        torch.testing.assert_close(ab_delta[module], 0.5 * exact[module])


def test_ab_average_refuses_different_ranks_or_scalings():
    with pytest.raises(MergeError, match=r"adapter 1 has \(4, 8, False\), adapter 0 has \(2, 4"):
        merge_ab_average([random_lora(0, r=2, alpha=4), random_lora(1, r=4, alpha=8)], [0.5, 0.5])
    with pytest.raises(MergeError, match="equal r, lora_alpha"):
        merge_ab_average([random_lora(0, alpha=4), random_lora(1, alpha=8)], [0.5, 0.5])


# --- merge_svd ------------------------------------------------------------------------------


def test_svd_with_full_rank_equals_delta_merge():
    adapters = [random_lora(0, r=2), random_lora(1, r=3, alpha=3)]
    weights = [0.6, 0.4]
    state, config = merge_svd(adapters, weights, rank=5)
    assert (config.r, config.lora_alpha) == (5, 5)
    exact = delta_weights(*merge_delta(adapters, weights))
    for module, delta in delta_weights(state, config).items():
        torch.testing.assert_close(delta, exact[module])


@pytest.mark.parametrize("rank", [1, 2, 3, 4])
def test_svd_truncation_is_the_best_rank_k_approximation(rank):
    adapters = [random_lora(0, r=2), random_lora(1, r=3, alpha=3)]
    weights = [0.6, 0.4]
    state, config = merge_svd(adapters, weights, rank=rank)
    assert state[next(iter(state))].shape[0] == rank
    exact = weighted_delta_sum(adapters, weights)
    for module, delta in delta_weights(state, config).items():
        assert torch.linalg.matrix_rank(delta) == rank
        singular = torch.linalg.svdvals(exact[module])
        # Eckart–Young: the Frobenius error is the norm of the dropped singular values.
        error = torch.linalg.matrix_norm(exact[module] - delta)
        assert math.isclose(error.item(), singular[rank:].norm().item(), rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("rank", [0, -1, 2.5, True, 11])
def test_svd_refuses_bad_rank(rank):
    with pytest.raises(MergeError, match="rank"):
        merge_svd([random_lora(0)], [1.0], rank=rank)


# --- validation shared by all merges --------------------------------------------------------


ALL_MERGES = [
    pytest.param(merge_delta, id="delta"),
    pytest.param(merge_ab_average, id="ab_average"),
    pytest.param(lambda adapters, weights: merge_svd(adapters, weights, rank=2), id="svd"),
]

OTHER_MODULES = {**MODULES, "base_model.model.model.layers.1.self_attn.v_proj": (6, 10)}
OTHER_SHAPES = {**MODULES, "base_model.model.model.layers.0.self_attn.v_proj": (7, 10)}


@pytest.mark.parametrize("merge", ALL_MERGES)
@pytest.mark.parametrize(
    ("make_adapters", "weights", "message"),
    [
        (lambda: [], [], "no adapters"),
        (lambda: [random_lora(0), random_lora(1)], [1.0], "2 adapters but 1 weights"),
        (lambda: [random_lora(0), random_lora(1)], [1.0, math.nan], "weight 1 must be finite"),
        (lambda: [random_lora(0), random_lora(1)], [1.0, "0.5"], "weight 1 must be a real"),
        (
            lambda: [random_lora(0), random_lora(1, modules=OTHER_MODULES)],
            [0.5, 0.5],
            r"adapter 1 targets other modules .*extra \['base_model\.model\.model\.layers\.1\."
            r"self_attn\.v_proj'\]",
        ),
        (
            lambda: [random_lora(0), random_lora(1, modules=OTHER_SHAPES)],
            [0.5, 0.5],
            r"shape \(7, 10\), adapter 0 one of \(6, 10\)",
        ),
    ],
)
def test_merges_validate_before_building(merge, make_adapters, weights, message):
    with pytest.raises(MergeError, match=message):
        merge(make_adapters(), weights)


@pytest.mark.parametrize("merge", ALL_MERGES)
def test_merges_refuse_different_base_models(merge):
    first, second = random_lora(0), random_lora(1)
    first[1].base_model_name_or_path = "HuggingFaceTB/SmolLM2-135M"
    second[1].base_model_name_or_path = "other/model"
    with pytest.raises(MergeError, match="base model 'other/model'"):
        merge([first, second], [0.5, 0.5])


@pytest.mark.parametrize("merge", ALL_MERGES)
def test_merges_refuse_non_finite_results(merge):
    poisoned = random_lora(1)
    poisoned[0][next(iter(poisoned[0]))][0, 0] = math.inf
    with pytest.raises(MergeError, match="non-finite"):
        merge([random_lora(0), poisoned], [0.5, 0.5])


@pytest.mark.parametrize("merge", ALL_MERGES)
def test_merges_refuse_overflow_to_inf(merge):
    huge = random_lora(1, dtype=torch.float32)
    with pytest.raises(MergeError, match="non-finite"):
        merge([random_lora(0, dtype=torch.float32), huge], [1.0, 1e39])


def test_merge_error_is_an_adapter_error():
    assert issubclass(MergeError, AdapterError)
    assert issubclass(MergeError, ValueError)


# --- agreement with peft's own "cat" merge --------------------------------------------------


def test_merge_delta_agrees_with_peft_add_weighted_adapter_cat():
    from peft import get_peft_model, get_peft_model_state_dict
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=128,
        )
    )
    model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]), "long"
    )
    model.add_adapter("short", LoraConfig(r=2, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    adapters = [
        (get_peft_model_state_dict(model, adapter_name=name), model.peft_config[name])
        for name in ("long", "short")
    ]
    weights = [0.3, 0.7]
    model.add_weighted_adapter(["long", "short"], weights, "merged", combination_type="cat")
    theirs = delta_weights(
        get_peft_model_state_dict(model, adapter_name="merged"), model.peft_config["merged"]
    )
    ours = delta_weights(*merge_delta(adapters, weights))
    assert ours.keys() == theirs.keys()
    assert len(ours) == 4
    for module in ours:
        torch.testing.assert_close(ours[module], theirs[module], rtol=1e-5, atol=1e-5)
