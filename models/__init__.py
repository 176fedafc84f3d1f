"""paintbot's image science: colour spaces, colourisation, style transfer, weights. No Telegram here.

Import the submodules you need (`models.colorize`, `models.style`); this package itself stays
light so that `import models` never pulls in torch.
"""
