"""The root of every error that means "the input is wrong", not "the code is wrong".

The CLI prints these as one line naming the stage and exits with status 2; anything else
is a bug and keeps its traceback.
"""


class DpclError(Exception):
    """Bad input a user can fix: a params typo, a missing corpus, a corrupt or mis-sampled file."""
