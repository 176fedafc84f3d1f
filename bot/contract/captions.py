"""The caption of a result: what was done, by which model, and that it is neither a record of the past nor
a real painting, in the reader's language. One function for the worker (a fresh result) and the bot (a
result sent again from the cache, bot/contract/cache.py), so that both say the same."""

from __future__ import annotations

from bot.contract import paintings
from bot.contract.job import Op
from bot.contract.options import ColorizeOptions, HintsOptions, Options
from bot.contract.texts import render


def result_caption(op: Op, options: Options, engine_label: str, lang: str | None, like: bool = False,
                   colorized_first: bool = False, animated: bool = False, repaired: int | None = None,
                   colorizer_label: str | None = None, faces: int = 0, upscaled: int | None = None) -> str:
    """`like`: coloured after the user's colour photo; `colorized_first`: a black-and-white photo was
    colourised by the default colouriser before it was painted keeping those colours. A restored photo:
    `repaired` damaged areas filled (0: none found), `faces` faces restored, enlarged `upscaled` times (None:
    not), then colourised by `colorizer_label` (None: it was not)."""
    if op == Op.RESTORE:
        text = (render("caption.restore", lang, count=repaired, engine=engine_label) if repaired else
                render("caption.restore_clean", lang, engine=engine_label))
        if faces:  # the network's reconstruction, said so: identity matters more than sharpness
            text = f"{text}\n{render('caption.restore_faces', lang, count=faces)}"
        if upscaled:
            text = f"{text}\n{render('caption.restore_upscaled', lang, scale=upscaled)}"
        if colorizer_label:
            text = f"{text}\n{render('caption.restore_colorized', lang, engine=colorizer_label)}"
    elif op == Op.HINTS and isinstance(options, HintsOptions):  # the number of colours the person picked
        text = render("caption.hints", lang, count=len(options.hints), engine=engine_label)
    elif op == Op.COLORIZE:
        text = render("caption.colorize_like" if like else "caption.colorize", lang, engine=engine_label)
        if isinstance(options, ColorizeOptions) and options.intensity != 100:  # two results told apart
            text = f"{text}\n{render('caption.intensity', lang, intensity=options.intensity)}"
    elif options.style is None:
        text = render("caption.style_custom", lang, engine=engine_label)
    else:
        text = render("caption.style", lang, engine=engine_label, painting=paintings.named(options.style, lang))
    if colorized_first:
        text = f"{text}\n{render('caption.colorized_first', lang)}"
    return f"{text}\n{render('note.animated', lang)}" if animated else text
