"""Column and reason names that several stages' files share: one definition, no import of a whole stage."""

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")  # the demo's classes
MANIFEST_FIELDS = ["path", "label", "split"]
ACTIONS = ("keep", "delete", "relabel")  # a decision on a cleaning candidate
MISLABELED, OUT_OF_PLACE = "likely_mislabeled", "likely_out_of_place"  # interpret's candidate reasons
