"""A zoo of tiny models trained by sinkbench on the Bigram-Backcopy language,
whose sink behaviour is known by construction."""
