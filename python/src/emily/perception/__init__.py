"""The perception service: speech to text (Whisper through faster-whisper) and text in
images (Tesseract), served on ``perception/transcribe`` and ``perception/read``."""
