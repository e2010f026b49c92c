"""A tiny Llama with its own tokenizer, built locally so the toolkit runs end to end with no downloads.

The model is small enough to memorise the default fictitious-authors set within a minute on a laptop CPU,
which is what tests, the quickstart and CI need: a model that provably *learned* something it can then be
asked to forget. The tokenizer is a byte-level BPE trained on the authors generator's text plus a general
English word list, so the authors' names and facts take few tokens and any other text still encodes.
Weights are drawn from a seeded generator, so two builds give identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from unlearn_cli.builtin import authors
from unlearn_cli.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

DEFAULT_HIDDEN = 128
DEFAULT_LAYERS = 2
DEFAULT_SEED = 0
NUM_HEADS = 4
VOCAB_SIZE = 3000
MAX_POSITIONS = 512

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
CHAT_TAGS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, *CHAT_TAGS)

# Each turn is "<|role|>\n{content}<|end|>\n"; a generation prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('tiny-llama chat roles are system, user and assistant, not ' + message['role']) }}"
    "{% endif %}"
    "{% if message['content'] is string %}{% set text = message['content'] %}"
    "{% else %}{% set text = message['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') %}{% endif %}"
    "{{ '<|' + message['role'] + '|>\n' + text + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

ENGLISH_WORDS = """
the of and to in is was he for it with as his on be at by i this had not are but from or have an they which
one you were her all she there would their we him been has when who will more no if out so said what up its
about into than them can only other new some could time these two may then do first any my now such like our
over man me even most made after also did many before must through back years where much your way well down
should because each just those people how too little state good very make world still own see men work long
get here between both life being under never day same another know while last might us great old year off
come since against go came right used take three states himself few house use during without again place
around however home small found thought went say part once general high upon school every does got united
left number course war until always away something fact though water less public put think almost hand
enough far took head yet government system better set told nothing night end why called didn't eyes find
going look asked later knew point next program city business give group toward young days let room president
side social given present several order national possible rather second face per among form important often
things looking early hands large big need four within felt along children saw best church ever least power
development light thing seemed family interest want members mind country area others done turned although
open god service certain kind problem began different door thus help sense means whole matter perhaps itself
york times law human line above name example action company local show whether five history gave today
either act feet across taken past quite anything seen having death week experience body word half really
field am car words already themselves information tell together college shall money period held keep sure
probably free seems real behind cannot miss political air question making office brought whose special heard
major problems ago became federal moment study available known result street economic boy position reason
change south board individual job society areas west close turn love community true court force full seem
wife age future voice center woman control common policy necessary following front sometimes girl six clear
further land able feel party music education university mother father brother sister son daughter child book
books story stories novel novels poem poems poet writer writers author authors write writes writing wrote
written read reads reading reader readers page pages chapter title library letter letters language languages
english french spanish german italian question questions answer answers yes please thank thanks hello
goodbye morning evening afternoon today tomorrow yesterday week month january february march april june july
august september october november december monday tuesday wednesday thursday friday saturday sunday spring
summer autumn winter weather rain snow wind sun moon star stars sky sea ocean river lake mountain mountains
forest tree trees flower flowers garden grass stone rock sand island beach coast harbour town village road
bridge train ship boat plane travel journey trip visit visited born birth died death live lives lived living
married wedding friend friends friendship neighbour teacher student students doctor nurse farmer artist
painter singer actor actress scientist engineer lawyer judge soldier king queen prince princess captain
detective inspector professor award awards prize prizes medal won win winning famous known best favourite
favorite popular red orange yellow green blue purple black white grey gray brown pink gold silver dark bright
happy sad angry afraid quiet loud fast slow hot cold warm cool wet dry soft hard heavy light short tall
beautiful ugly rich poor strong weak simple difficult easy early late young old new ancient modern first last
one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred thousand
million eat drink food bread cheese milk coffee tea wine water fruit apple meat fish soup dinner lunch
breakfast kitchen table chair bed window wall floor roof garden door key box bag cup plate knife glass
paper pen pencil ink desk computer phone radio television film photo picture music song dance play game sport
football tennis chess run walk swim sing draw paint cook clean wash sleep wake dream remember forget forgot
forgotten learn learned teach taught understand believe hope wish try tried begin began finish finished stop
start started open close closed bring carry hold keep leave move stay wait watch listen speak spoke talk
talked explain describe answer ask asked call called help helped love loved hate like liked need wanted buy
sell pay cost price money bank shop market store city country countries nation capital north south east west
left right middle top bottom inside outside near far here there everywhere nowhere always never sometimes
usually often rarely again still already soon later because although however therefore while whereas
unless until since during before after above below between among through across along around behind beside
model models data training trained train learning machine computer science mathematics history geography
biology chemistry physics philosophy art arts culture religion politics economy health medicine hospital
animal animals dog dogs cat cats bird birds horse horses cow sheep goat pig chicken mouse lion tiger bear
wolf fox rabbit deer snake whale dolphin shark fish insect bee butterfly spider
"""


def training_corpus() -> list[str]:
    """The tokenizer's training text: the default authors set, every value pool, and general English."""
    lines = authors.corpus_lines()
    words = ENGLISH_WORDS.split()
    lines.extend(" ".join(words[i : i + 12]) for i in range(0, len(words), 12))
    lines.extend(" ".join(word.capitalize() for word in words[i : i + 12]) for i in range(0, len(words), 12))
    return lines


def build_tokenizer(vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE and wrap it with bos/eos/pad/unk, bos prepended, and the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(training_corpus(), trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, backend.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=list(CHAT_TAGS),
        add_bos_token=True,
        add_eos_token=False,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )


def build_tiny_llama(
    out_dir: str | Path,
    hidden: int = DEFAULT_HIDDEN,
    layers: int = DEFAULT_LAYERS,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Write tokenizer, config, generation config and safetensors weights into `out_dir`; returns it."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    if hidden < 2 * NUM_HEADS or hidden % (2 * NUM_HEADS) or not 1 <= layers <= 64:
        raise UserError(
            f"tiny-llama: hidden={hidden}, layers={layers} is not a valid size",
            hint=f"hidden must be a positive multiple of {2 * NUM_HEADS}, layers between 1 and 64",
        )
    out = Path(out_dir)
    tokenizer = build_tokenizer()
    end_id = tokenizer.convert_tokens_to_ids("<|end|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-6,
        initializer_range=0.02,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, end_id],
        pad_token_id=tokenizer.pad_token_id,
    )
    # transformers writes nothing from a rank other than 0 of an initialized process group; an asset is
    # built by whichever rank asks first, so this model is saved wherever it is built.
    model.should_save_on_this_rank = lambda is_main_process: True  # type: ignore[method-assign]
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(out)
    expected = ("config.json", "model.safetensors", "tokenizer.json")
    missing = [name for name in expected if not (out / name).is_file()]
    if missing:
        raise RuntimeError(f"building tiny-llama left out {', '.join(missing)}")
    return out
