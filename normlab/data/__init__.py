"""The datasets: what each is (specs), fetching verified copies (fetch), reading them into
tensors (readers), and turning resident images into training batches (augment).
"""
