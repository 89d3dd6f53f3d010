"""The training code of the tiny model: examples are formatted as vlmcap requests, runs repeat.

A few steps on a handful of items, no engine: the heavy run is ``python -m
vlmcap.tiny.train`` (and its result is checked through vLLM in test_trained_tiny.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from vlmcap.media.video import sample_video
from vlmcap.tiny.model import TRAINED_SPEC, trained_corpus, write_assets
from vlmcap.tiny.questions import ANSWER_INSTRUCTION
from vlmcap.tiny.synthetic import SceneSpec, write_video
from vlmcap.tiny.training.config import IGNORE, TrainConfig
from vlmcap.tiny.training.encoding import Encoder, collate, forward
from vlmcap.tiny.training.loop import train
from vlmcap.tiny.training.probe import attribute_probe, scene_labels
from vlmcap.tiny.training.tasks import TaskSampler, sampled_clip


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    folder = tmp_path_factory.mktemp("assets")
    write_assets(folder, TRAINED_SPEC, trained_corpus()).save_pretrained(folder)
    return Encoder(folder)


def test_caption_and_question_words_are_single_tokens(encoder):
    tokenizer = encoder.tokenizer
    for text in ("a red circle moving left", "three orange crosses", "an orange star"):
        assert len(tokenizer.encode(text, add_special_tokens=False)) == len(text.split())
    assert tokenizer.encode("A", add_special_tokens=False) != tokenizer.encode(
        "B", add_special_tokens=False
    )


def test_examples_are_vlmcap_requests_with_loss_on_the_answer_only(encoder, tmp_path):
    sampler = TaskSampler(encoder.plugin, TrainConfig(questions=1), seed=3, work=tmp_path)
    for kind in ("image", "video", "pair"):
        tasks = sampler.scene(kind)
        assert len(tasks) == (3 if kind == "pair" else 2)
        assert len({t.media_id for t in tasks}) == 1
        for task in tasks:
            request = encoder.request(task)
            messages = encoder.plugin.make_request(task.prompt, task.media).messages
            expected = encoder.processor.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            assert request["prompt"] == expected  # what the plugin sends vLLM at inference
            assert request["prompt"].endswith(task.prompt + "<|im_end|>\n<|im_start|>assistant\n")
            example = encoder.encode(task)
            answer = [t for t in example.labels if t != IGNORE]
            assert answer == encoder.answer_ids(task.target)
            assert example.labels[-len(answer) :] == answer  # the answer closes the sequence
            assert encoder.tokenizer.decode(answer) == task.target + "<|im_end|>"
            if task.kind == "video":
                assert example.second_per_grid_ts == [1.0]  # 2 frames a patch at 2 fps
                assert example.video_grid_thw is not None
                assert int(example.video_grid_thw[0, 0]) >= 2  # motion spans patches
            else:
                assert example.image_grid_thw is not None
                assert len(example.image_grid_thw) == (2 if kind == "pair" else 1)
        if kind != "pair":
            assert tasks[0].category == "caption" and tasks[0].target == tasks[0].description
            assert tasks[1].prompt.endswith(ANSWER_INSTRUCTION)
        else:  # which image shows X, then one question about each picture
            assert [t.category for t in tasks] == ["pair", "picture", "picture"]
            assert tasks[0].target in ("the first image", "the second image")
            assert "picture 1?" in tasks[1].prompt and "picture 2?" in tasks[2].prompt
            assert request["prompt"].count("Picture ") == 2  # the template labels the images
            assert tasks[0].scenes[0].description() == tasks[0].description
    image_prompts = {sampler.scene("image")[0].prompt for _ in range(20)}
    assert image_prompts == {
        "Describe this image in detail.",
        "Write a very short caption for the given image.",
    }
    video_prompts = {sampler.scene("video")[0].prompt for _ in range(30)}
    assert "Describe this video in detail." in video_prompts


def test_rendered_clips_match_what_vlmcap_decodes_from_the_mp4(tmp_path):
    spec = SceneSpec("blue", "square", "right", seed=5)
    frames, fps = sampled_clip(spec, 2.0, 8.0, (160, 120))
    clip = sample_video(write_video(tmp_path / "c.mp4", spec, 2.0, 8.0), fps=2.0)
    assert frames.shape == clip.frames.shape == (4, 112, 140, 3)
    assert fps == pytest.approx(clip.fps)
    diff = np.abs(frames.astype(int) - clip.frames.astype(int)).mean()
    assert diff < 6  # codec noise only: same frames, same size


def test_shared_vision_features_give_the_plain_forward(encoder, tmp_path):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    sampler = TaskSampler(encoder.plugin, TrainConfig(), seed=1, work=tmp_path)
    tasks = [*sampler.scene("pair"), *sampler.scene("video"), *sampler.scene("image")]
    examples = [encoder.encode(t) for t in tasks]
    shared = collate(examples, encoder.pad_id)
    plain = collate(examples, encoder.pad_id, share=False)
    assert int(shared["attention_mask"].sum()) == sum(len(e.input_ids) for e in examples)
    assert len(shared["shared_image_grid_thw"]) == 3  # two pair images + one image, once each
    assert len(shared["image_grid_thw"]) == 9  # every occurrence keeps its grid (3 + 3 x 2)
    first, second = tasks[0].scenes
    image_labels = shared["shared_image_grid_thw_labels"].tolist()
    assert image_labels[:2] == [list(scene_labels(first)), list(scene_labels(second))]
    torch.manual_seed(0)
    config = write_assets(tmp_path / "m", TRAINED_SPEC, trained_corpus())
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    probe = attribute_probe(TRAINED_SPEC.text_hidden)
    with torch.no_grad():
        loss_shared, right_shared, probe_right = forward(model, shared)
        loss_plain, right_plain, _ = forward(model, plain)
        with_probe = forward(model, shared, probe=probe, probe_weight=1.0)
    assert float(loss_shared) == pytest.approx(float(loss_plain), rel=1e-5)
    assert torch.equal(right_shared, right_plain)
    assert probe_right is None  # no probe given
    assert with_probe.probe_right is not None
    assert tuple(with_probe.probe_right.shape) == (4, 4)  # 3 images + 1 clip, 4 attributes
    assert float(with_probe.loss) > float(loss_shared)  # the probe's loss is added


def _weights(folder: Path) -> dict[str, np.ndarray]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k).float().numpy() for k in f.keys()}  # noqa: SIM118


def test_training_is_seeded_and_writes_a_bf16_model_folder(tmp_path):
    def run(name: str, seed: int, eval_every: int = 0) -> Path:
        config = TrainConfig(
            out=tmp_path / name,
            steps=2,
            batch_size=2,
            seed=seed,
            eval_every=eval_every,
            eval_size=4,
            threads=1,
        )
        return train(config).out

    a, b, c = run("a", 0), run("b", 0), run("c", 1)
    checked = run("d", 0, eval_every=1)  # held-out checks read the model, never change it
    for name in ("config.json", "generation_config.json", "tokenizer.json", "vlmcap_tiny.json"):
        assert (a / name).is_file()
    assert (a / "preprocessor_config.json").is_file() or (a / "processor_config.json").is_file()
    with safe_open(str(a / "model.safetensors"), "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.bfloat16"}  # noqa: SIM118
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    wd = _weights(checked)
    assert all(np.array_equal(wa[k], wd[k]) for k in wa)
    assert not all(np.array_equal(wa[k], wc[k]) for k in wa)


def test_colour_blind_init_gives_every_colour_the_same_shape_features(encoder, tmp_path):
    import torch
    from PIL import Image
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vlmcap.tiny.synthetic import PLAIN_RGB, render_image
    from vlmcap.tiny.training.patch_init import (
        init_patch_embedding,
        shape_colour_direction,
    )

    config = write_assets(tmp_path / "m", TRAINED_SPEC, trained_corpus())
    model = Qwen2_5_VLForConditionalGeneration(config)
    direction = shape_colour_direction(encoder.processor)
    init_patch_embedding(model, direction, seed=0)
    images = [render_image(SceneSpec(c, "star", seed=2)) for c in ("red", "blue", "white")]
    grey = Image.new("RGB", images[0].size, PLAIN_RGB)
    pixels = encoder.processor.image_processor(images=[grey, *images], return_tensors="pt")
    patches = pixels["pixel_values"].view(4, -1, pixels["pixel_values"].shape[-1])
    embed = model.model.visual.patch_embed
    with torch.no_grad():
        features = [embed(p - patches[0]).flatten() for p in patches[1:]]
    for other in features[1:]:
        cosine = torch.nn.functional.cosine_similarity(features[0], other, dim=0)
        assert abs(float(cosine)) > 0.999


def test_kmeans_filters_are_unit_norm_shape_parts_and_seeded(encoder):
    from vlmcap.tiny.training.patch_init import (
        patch_kmeans_filters,
        shape_colour_direction,
    )

    direction = shape_colour_direction(encoder.processor)
    args = {"n": 12, "shape_sizes": (40, 64), "scenes": 40, "iterations": 5}
    filters = patch_kmeans_filters(encoder.processor, direction, seed=1, **args)
    patch = encoder.processor.image_processor.patch_size
    assert filters.shape == (12, patch, patch)
    flat = filters.reshape(12, -1)
    assert np.allclose(np.linalg.norm(flat, axis=1), 1.0, atol=1e-5)
    assert np.allclose(flat.sum(axis=1), 0.0, atol=1e-4)  # contrast only: no flat patches
    assert len({tuple(np.round(f, 4)) for f in flat}) == 12  # distinct centroids
    again = patch_kmeans_filters(encoder.processor, direction, seed=1, **args)
    assert np.array_equal(filters, again)
