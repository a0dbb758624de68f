"""Training and evaluation: the corpus extracted from music21's bundled collections (corpus),
batches, the trainers (train: LSTM and VAE; train_bank; train_gan), held-out evaluation (evaluate)
and the statistics they share (stats, ngram). It imports the library; the library never imports it.
"""
