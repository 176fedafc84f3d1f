"""Everything paintbot says in a chat, in one place (the bot and the worker both speak)."""

HELP = (
    "Hi! I bring old black-and-white photos back to colour, and repaint photos as paintings.\n\n"
    "• Send me a photo and I'll colourise it. Send it as a file to get full resolution back.\n"
    "• In a group, reply /colorize to a photo.\n"
    "• Reply /style NAME to a photo to repaint it, e.g. /style vangogh — /styles shows them all.\n"
    "  Add a strength 0–100 (/style vangogh 60) or keep-colors to keep the photo's own colours.\n"
    "• Your own style: reply to a photo with another photo captioned /style.\n\n"
    "I keep nothing: photos are deleted as soon as you have the result."
)

QUEUED = "Queued — position {position}. I'll send the result here."
WORKING_COLORIZE = "Colourising…"
WORKING_STYLE = "Painting…"

NEED_PHOTO_COLORIZE = "Reply /colorize to a photo (or send me a photo) and I'll colourise it."
NEED_PHOTO_STYLE = "Reply /style NAME to a photo, e.g. /style vangogh. /styles shows the styles."
NOT_AN_IMAGE = "That file doesn't look like an image. Send a JPEG, PNG or WebP photo."
TOO_BIG = "That file is too big for me (over {limit_mb} MB). Please send a smaller one."

UNAVAILABLE = "Sorry, I'm briefly unavailable. Please try again in a minute."
FAILED = "Sorry, something went wrong with this one. Please try again later."
TIMED_OUT = "Sorry, that took too long and I had to stop. Try a smaller photo."
