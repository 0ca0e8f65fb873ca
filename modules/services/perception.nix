# emily-perception: speech to text (Whisper through faster-whisper, CTranslate2) and text
# in images (Tesseract) on the bus (`emily serve perception`): perception/transcribe and
# perception/read, /metrics on localhost:9463. A client of the host's zenohd; cognition
# sends it the audio and images it observes. The Whisper model is a CTranslate2
# directory: the embedded tiny.en by default, base or small on the host (int8 on the P4,
# which lacks fast fp16). With `caption.model` and `caption.projector` (a vision GGUF and
# its mmproj, pulled by SHA-256) it also describes images through llama.cpp
# (perception/caption). The unit itself comes from ./unit.nix, the /metrics options from
# ./lib/http-api.nix.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.emily.perception;
  unit = import ./unit.nix { inherit config lib pkgs; };
  http = import ./lib/http-api.nix { inherit lib; };
  gpu = cfg.device == "cuda";
  tesseract = pkgs.tesseract.override { enableLanguages = cfg.ocrLanguages; };
in
{
  options.services.emily.perception = unit.options {
    service = "perception";
    description = "the Emily perception service (Whisper speech to text, Tesseract OCR)";
    defaults = {
      user = "emily-perception";
      # the Whisper model and one decoded clip; small in int8 stays under 2G
      memoryHigh = "3G";
      memoryMax = "4G";
      # batch work next to the reflex and recall
      cpuWeight = 100;
    };
    example = {
      beam_size = 5;
      max_audio_s = 1200;
    };
  }
  // {
    modelDir = lib.mkOption {
      type = lib.types.path;
      default = pkgs.emily-whisper-tiny-en;
      defaultText = lib.literalExpression "pkgs.emily-whisper-tiny-en";
      example = "/var/lib/emily/perception/models/whisper-base-ct2";
      description = ''
        A CTranslate2 Whisper model directory (model.bin, config.json, tokenizer.json).
        The default, tiny.en, is the embedded laptop model; on the host use base or small
        converted with ct2-transformers-converter.
      '';
    };

    modelName = lib.mkOption {
      type = lib.types.str;
      default = "whisper-tiny.en";
      example = "whisper-base";
      description = "The model's name as each episode's provenance records it.";
    };

    device = lib.mkOption {
      type = lib.types.enum [
        "cpu"
        "cuda"
      ];
      default = "cpu";
      description = "Where Whisper runs; cuda opens the NVIDIA device nodes to the unit.";
    };

    computeType = lib.mkOption {
      type = lib.types.str;
      default = "int8";
      example = "float16";
      description = "CTranslate2 compute type: int8 on CPUs and Pascal GPUs (the P4), float16 on newer GPUs.";
    };

    ocrLanguages = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "eng" ];
      description = "Tesseract language models installed for the unit (eng must be among them); the first one reads the images.";
    };

    caption = {
      model = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/var/lib/emily/perception/models/gemma-3-4b-it-Q4_K_M.gguf";
        description = ''
          A vision GGUF for image captions (perception/caption), outside the Nix store,
          pulled by its SHA-256 with `emily model pull URL --sha256 HEX` as this unit's
          user. Null: no captions; images are read by Tesseract only.
        '';
      };
      projector = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/var/lib/emily/perception/models/mmproj-gemma-3-4b-it-f16.gguf";
        description = "The multimodal projector (mmproj) GGUF that belongs to `caption.model`.";
      };
      gpuLayers = lib.mkOption {
        type = lib.types.int;
        default = if gpu then -1 else 0;
        defaultText = lib.literalMD "`-1` (all) with `device = \"cuda\"`, else `0`";
        description = "Layers of the vision model offloaded to the GPU.";
      };
    };
  }
  // http.metrics { port = 9463; };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = (cfg.caption.model == null) == (cfg.caption.projector == null);
            message = "services.emily.perception.caption: model and projector go together (a vision GGUF and its mmproj).";
          }
        ];
      }
      (unit.config {
        service = "perception";
        inherit cfg gpu;
        description = "Emily perception service (Whisper, Tesseract)";
        settings = {
          model_dir = toString cfg.modelDir;
          model_name = cfg.modelName;
          inherit (cfg) device;
          compute_type = cfg.computeType;
          tesseract = "${tesseract}/bin/tesseract";
          ocr_lang = builtins.head cfg.ocrLanguages;
          metrics_port = cfg.metricsPort;
          metrics_addr = cfg.metricsAddress;
        }
        // lib.optionalAttrs (cfg.caption.model != null) {
          caption_model = cfg.caption.model;
          caption_projector = cfg.caption.projector;
          caption_gpu_layers = cfg.caption.gpuLayers;
        };
        # the models are files on disk; never reach for the Hub
        extraEnvironment.HF_HUB_OFFLINE = "1";
      })
    ]
  );
}
