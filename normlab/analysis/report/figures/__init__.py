"""The report's figures: which a study gets (gallery), what they all share (canvas: style,
saving, axes), and one module per kind (curves, accuracy, confusion, misclassified).
"""
