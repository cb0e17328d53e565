"""ftc's terminal side: the command line and the Textual console. Never imports TensorFlow."""
