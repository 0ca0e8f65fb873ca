let
  cuda = import ../../modules/lib/cuda.nix;
in
[
  {
    name = "CUDA 12.9 builds for the P4 (6.1)";
    expr = cuda.supports "12.9" [ "6.1" ];
    expected = true;
  }
  {
    name = "CUDA 13.0 cannot build for the P4";
    expr = cuda.unsupported "13.0" [ "6.1" ];
    expected = [ "6.1" ];
  }
  {
    name = "CUDA 13 still builds for Turing and newer";
    expr = cuda.supports "13.2" [
      "7.5"
      "8.9"
      "12.0"
    ];
    expected = true;
  }
  {
    name = "Volta (7.0) is dropped by CUDA 13 too, only it is reported";
    expr = cuda.unsupported "13.1" [
      "7.0"
      "8.0"
    ];
    expected = [ "7.0" ];
  }
  {
    name = "capability 10.0 compares as a version, not a string";
    expr = cuda.supports "13.0" [ "10.0" ];
    expected = true;
  }
  {
    name = "CUDA 12 dropped Kepler (3.7), CUDA 11.8 still builds for it";
    expr = [
      (cuda.unsupported "12.6" [ "3.7" ])
      (cuda.unsupported "11.8" [ "3.7" ])
    ];
    expected = [
      [ "3.7" ]
      [ ]
    ];
  }
  {
    name = "CMake's architecture list for the P4 and a Turing card";
    expr = cuda.cmakeArchitectures [
      "6.1"
      "7.5"
    ];
    expected = "61;75";
  }
]
