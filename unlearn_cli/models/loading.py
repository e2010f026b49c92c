"""Load a causal LM and its tokenizer from a recipe's `[model]` section.

Both loaders turn every failure a user can cause (a missing folder, an offline hub id, a slow tokenizer)
into one `UserError` naming the recipe key, and both accept `builtin://` paths so the toolkit runs with no
downloads. Attention back-ends that cannot run here (flash attention without its package or a GPU) fall
back to `sdpa` with one warning, so one recipe runs on a laptop and on a cluster.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from unlearn_cli.builtin import is_builtin, resolve_builtin
from unlearn_cli.errors import UnlearnWarning, UserError
from unlearn_cli.registry import register

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
else:
    # recipe validation resolves these hints at run time; importing transformers here would slow the CLI
    PreTrainedModel = PreTrainedTokenizerBase = Any

MODEL_KEY = "model.model_args"
TOKENIZER_KEY = "model.tokenizer_args"
DEFAULT_EOS = "</s>"

DtypeName = Literal["auto", "float32", "float16", "bfloat16"]
AttentionName = Literal["eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"]
DTYPE_ALIASES: dict[str, str] = {
    "fp32": "float32",
    "float": "float32",
    "fp16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
}
# transformers' own checks of each flash back-end (package, version, GPU); without one we use sdpa.
FLASH_CHECKS: dict[str, str] = {
    "flash_attention_2": "is_flash_attn_2_available",
    "flash_attention_3": "is_flash_attn_3_available",
}
FALLBACK_ATTENTION = "sdpa"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


class CausalLMArgs(BaseModel):
    """`model_args`: where the model is and how to load it; any other key goes to `from_pretrained`."""

    model_config = ConfigDict(extra="allow")

    pretrained_model_name_or_path: str
    dtype: DtypeName | None = None
    attn_implementation: AttentionName | None = None

    @model_validator(mode="before")
    @classmethod
    def _rename_torch_dtype(cls, data: Any) -> Any:
        # transformers 5 renamed `torch_dtype` to `dtype`; old recipes keep working
        if isinstance(data, dict) and "torch_dtype" in data:
            if "dtype" in data:
                raise ValueError("give `dtype` only: `torch_dtype` is its old name")
            data = dict(data)
            data["dtype"] = data.pop("torch_dtype")
        return data

    @field_validator("dtype", mode="before")
    @classmethod
    def _dtype_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower().removeprefix("torch.")
            return DTYPE_ALIASES.get(lowered, lowered)
        return value

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `from_pretrained`; dtype names become torch dtypes only here, at load."""
        kwargs: dict[str, Any] = dict(self.model_extra or {})
        if self.dtype is not None:
            import torch

            kwargs["dtype"] = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
        if self.attn_implementation is not None:
            kwargs["attn_implementation"] = usable_attention(self.attn_implementation)
        return kwargs


class TokenizerArgs(BaseModel):
    """`tokenizer_args`: the tokenizer path (default: the model's); other keys go to `from_pretrained`."""

    model_config = ConfigDict(extra="allow")

    pretrained_model_name_or_path: str | None = None


def usable_attention(requested: str) -> str:
    """The attention back-end to load with: a flash one only where transformers says it can run.

    Without a CUDA GPU flash attention cannot run at all, so a recipe meant for GPUs falls back to sdpa (the
    same attention) with one warning. On a GPU, a missing flash-attn package is a mistake to fix, not a
    reason to run slower: it is an error.
    """
    check = FLASH_CHECKS.get(requested)
    if check is None:
        return requested
    import importlib.util

    import torch
    import transformers.utils

    if getattr(transformers.utils, check)():
        return requested
    package = "flash_attn_3" if requested.endswith("3") else "flash_attn"
    if torch.cuda.is_available() and importlib.util.find_spec(package) is None:
        raise UserError(
            f"attn_implementation = '{requested}' needs the {package.replace('_', '-')} package, which is "
            "not "
            "installed",
            key=f"{MODEL_KEY}.attn_implementation",
            hint='pip install "unlearn-cli[flash]" (flash-attn), or set attn_implementation = "sdpa"',
        )
    warnings.warn(
        f"attn_implementation='{requested}' needs its flash-attn package (a supported version) and a "
        f"CUDA GPU, and this machine lacks one of them; using '{FALLBACK_ATTENTION}' instead",
        UnlearnWarning,
        stacklevel=3,
    )
    return FALLBACK_ATTENTION


def looks_like_hub_id(path: str) -> bool:
    """Whether `path` could be a Hugging Face hub id (`name` or `org/name`) rather than a local folder."""
    return bool(_HUB_ID.match(path)) and ".." not in path


def _local_or_hub(path: str, key: str, what: str) -> str:
    """Resolve `builtin://` URIs and refuse local paths that do not exist, before transformers sees them."""
    if is_builtin(path):
        try:
            return str(resolve_builtin(path))
        except UserError as exc:
            raise exc.located(key=key) from None
    expanded = Path(path).expanduser()
    if expanded.exists():
        return str(expanded)
    if not looks_like_hub_id(path):
        raise UserError(
            f"{what} folder '{path}' does not exist",
            key=key,
            hint="give an existing folder saved with save_pretrained, a hub id like 'org/name', "
            "or builtin://tiny-llama",
        )
    return path


def _load_error(exc: Exception, path: str, key: str, what: str) -> UserError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and not Path(path).exists():
        hint = (
            f"'{path}' is neither a local folder nor reachable on the Hugging Face hub (offline?); "
            "download it where you have internet and point to the local folder, or set HF_HUB_OFFLINE=1 "
            "to use models already in the Hugging Face cache"
        )
    elif isinstance(exc, OSError):
        hint = "the folder must hold what save_pretrained writes (config.json, weights, tokenizer files)"
    else:
        hint = "check the other keys of this table: they are passed to from_pretrained as they are"
    return UserError(f"cannot load {what} '{path}': {reason}", key=key, hint=hint)


def _validate(schema: type[BaseModel], value: Any, key: str) -> Any:
    if isinstance(value, schema):
        return value
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise UserError(error["msg"], key=f"{key}.{where}" if where else key) from None


@register("model", "AutoModelForCausalLM")
def AutoModelForCausalLM(model_args: CausalLMArgs) -> PreTrainedModel:
    """Any causal LM transformers can load: a local folder, a hub id or builtin://tiny-llama."""
    import transformers

    args: CausalLMArgs = _validate(CausalLMArgs, model_args, MODEL_KEY)
    key = f"{MODEL_KEY}.pretrained_model_name_or_path"
    path = _local_or_hub(args.pretrained_model_name_or_path, key, "model")
    kwargs = args.from_pretrained_kwargs()
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise _load_error(exc, path, key, "model") from None
    except ImportError as exc:
        raise UserError(
            f"cannot load model '{path}': {exc}",
            key=f"{MODEL_KEY}.attn_implementation",
            hint='install the missing package, or choose attn_implementation = "sdpa"',
        ) from None
    except (ValueError, TypeError) as exc:
        raise _load_error(exc, path, MODEL_KEY, "model") from None


def load_tokenizer(
    tokenizer_args: dict[str, Any], default_path: str | None = None
) -> PreTrainedTokenizerBase:
    """The recipe's fast tokenizer, with an eos token and a pad token (pad = eos when it had none)."""
    import transformers

    args: TokenizerArgs = _validate(TokenizerArgs, tokenizer_args or {}, TOKENIZER_KEY)
    key = f"{TOKENIZER_KEY}.pretrained_model_name_or_path"
    given = args.pretrained_model_name_or_path or default_path
    if not given:
        raise UserError(
            "no tokenizer path: neither tokenizer_args nor model_args names one",
            key=key,
            hint="set model.model_args.pretrained_model_name_or_path (the tokenizer is loaded from there)",
        )
    path = _local_or_hub(given, key, "tokenizer")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, **(args.model_extra or {}))
    except OSError as exc:
        raise _load_error(exc, path, key, "tokenizer") from None
    except (ValueError, TypeError) as exc:
        raise _load_error(exc, path, TOKENIZER_KEY, "tokenizer") from None
    if not tokenizer.is_fast:
        raise UserError(
            f"the tokenizer of '{given}' is a slow (Python) tokenizer; only fast tokenizers are supported",
            key=TOKENIZER_KEY,
            hint="remove use_fast = false, or save a fast version (tokenizer.json) of this tokenizer",
        )
    return ensure_special_tokens(tokenizer)


def ensure_special_tokens(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give the tokenizer an eos and a pad token (= eos) when it lacks them; batching needs both.

    A missing eos is taken from the vocabulary when it holds `</s>`; otherwise the recipe must name one
    (`tokenizer_args.eos_token`): a token added here would start from an embedding the model never learned.
    """
    if tokenizer.eos_token is None:
        if tokenizer.convert_tokens_to_ids(DEFAULT_EOS) in (None, tokenizer.unk_token_id):
            pad = f" (its pad token is {tokenizer.pad_token!r})" if tokenizer.pad_token is not None else ""
            raise UserError(
                "the tokenizer has no end-of-sequence (eos) token and no "
                f"'{DEFAULT_EOS}' in its vocabulary{pad}: answers need an eos to be trained to end, and "
                "batches need a pad token",
                key=TOKENIZER_KEY,
                hint=f'set {TOKENIZER_KEY}.eos_token = "..." to a token of its vocabulary (a new token is '
                "added to the vocabulary and the model's embeddings grow by one, untrained)",
            )
        tokenizer.add_special_tokens({"eos_token": DEFAULT_EOS})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
