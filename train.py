"""Train the track classifier: ``python train.py data=kubric+hoi4d``.

NOT IMPLEMENTED YET: the classifier and its Lightning trainer are the next piece of work (issue
3). Until then this entry point only says so; `python -m data_prep.synthetic` makes training data.
"""

import sys

if __name__ == "__main__":
    sys.exit(
        "train.py: the track classifier trainer is not implemented yet (planned next). "
        "`python -m data_prep.synthetic` already writes synthetic training scenes."
    )
