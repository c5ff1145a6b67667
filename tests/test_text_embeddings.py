"""Item text embeddings (recsys_core.data.text_embeddings, `embed-text`): a tiny randomly
initialised sentence-transformers model built in a temporary folder goes through the same code
path as a real one; the vectors are stored with the dataset and read by content and two-tower."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recsys_core.cli.main import main
from recsys_core.data import store
from recsys_core.data import text_embeddings as te
from recsys_core.data.columns import TEXT_EMBEDDING
from recsys_core.data.features import item_feature_blocks
from recsys_core.data.synthetic import SyntheticConfig, make_frames
from recsys_core.errors import DataError
from recsys_core.models.content import ContentBased

SMALL = SyntheticConfig(n_users=60, n_items=40, n_clusters=4, mean_history=8)
WORDS = "a story number item genre0 genre1 genre2 genre3 genres tags".split()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A BERT with hidden size 32 and 2 layers, random weights, a WordPiece vocabulary written
    here, saved as a sentence-transformers model (mean pooling): no network."""
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    try:  # sentence-transformers 6 moved the modules; 3 to 5 have them here
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    raw = tmp_path_factory.mktemp("bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"0123456789()|.:,"]
    vocab += [f"##{c}" for c in "0123456789"] + list("abcdefghijklmnopqrstuvwxyz")
    (raw / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(raw)
    BertTokenizerFast(vocab_file=str(raw / "vocab.txt")).save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=48)
    pooling = Pooling(32, "mean")
    out = tmp_path_factory.mktemp("st") / "tiny-st"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(out))
    return out


@pytest.fixture()
def synth_dataset(workspace):
    inter, items, users = make_frames(SMALL)
    info = store.import_frames(
        workspace, inter, name="synth", source="test", items=items, users=users
    )
    return workspace, info.id


def test_item_texts_read_the_chosen_fields(synthetic):
    texts = te.item_texts(synthetic, ["title", "genres"])
    assert texts[0].startswith("Item 0 (Genre0). Genres: Genre0, ")
    assert "Tags:" not in texts[0]
    assert "Tags: a genre0 story" in te.item_texts(synthetic, "tags,title")[0]
    with pytest.raises(DataError, match="unknown text fields"):
        te.parse_fields("title,plot")


def test_tiny_model_stores_vectors_used_by_content(tiny_model, synth_dataset):
    ws, ref = synth_dataset
    seen: list[float] = []
    info = te.embed_dataset(
        ws, ref, str(tiny_model), fields="title,genres", device="cpu", batch_size=16,
        progress=lambda done, m: seen.append(m["fraction"]),
    )  # fmt: skip
    assert info.encoder == "sentence-transformers" and info.dim == 32
    assert info.fields == ("title", "genres") and seen[-1] == 1.0 and len(seen) >= 3
    assert te.text_embedding_info(ws, ref) == info
    data = store.load_dataset(ws, ref)
    vectors = te.text_vectors(data)
    assert vectors.shape == (data.n_items, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # same text, same vector: the encoder really ran on each item's own text
    again, _ = te.encode_texts(te.item_texts(data, info.fields)[:3], str(tiny_model), device="cpu")
    np.testing.assert_allclose(again, vectors[:3], atol=1e-5)
    assert TEXT_EMBEDDING in item_feature_blocks(data)
    model = ContentBased(device="cpu").fit(data)
    assert [b for b, _ in model.side_schema_["blocks"]][-1] == "text_embedding"
    user = int(np.argmax(data.user_activity))
    item = int(model.recommend(np.array([user]), k=1)[0][0, 0])
    assert "item text embedding" in [name for name, _ in model.explain_side_features(user, item)]


def test_the_offline_default_and_a_model_that_is_not_here(synth_dataset):
    ws, ref = synth_dataset
    assert main(["--workspace", str(ws.root), "embed-text", ref, "--json"]) == 0
    info = te.text_embedding_info(ws, ref)
    assert info.encoder == te.OFFLINE_MODEL and "offline default" in info.label
    meta = json.loads((store.dataset_dir(ws, ref) / te.META_FILE).read_text())
    assert meta["model"] == te.OFFLINE_MODEL and meta["created_at"] > 0
    if te.missing_dependency() is None:
        with pytest.raises(DataError, match="local Hugging Face cache"):
            te.load_sentence_model("no-such-org/no-such-model", device="cpu")
    else:
        with pytest.raises(DataError, match="sentence-transformers is not installed"):
            te.load_sentence_model("anything")


def test_text_clusters_follow_the_planted_genres(synthetic):
    from recsys_core.text_maps import text_clusters, text_source

    vectors, source = text_source(synthetic)
    assert "offline default" in source  # no stored embeddings: TF-IDF + SVD of the titles
    labels = text_clusters(vectors, np.arange(synthetic.n_items), k=5)
    genre = np.array([c.split("|")[0] for c in synthetic.item_table["categories"]])
    # each text cluster is dominated by one planted genre (the titles and tags name it)
    purity = sum(
        np.unique(genre[labels == lab], return_counts=True)[1].max() for lab in set(labels)
    ) / len(labels)
    assert purity > 0.8
