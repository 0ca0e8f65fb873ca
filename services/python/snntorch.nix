{
  lib,
  buildPythonPackage,
  fetchPypi,
  torch,
  numpy,
}:

buildPythonPackage rec {
  pname = "snntorch";
  version = "1.0.0";
  format = "wheel";

  src = fetchPypi {
    inherit pname version format;
    # sha256 of the wheel file as downloaded by `pip download --no-deps snntorch==1.0.0`
    hash = "sha256-tahfb0TG0nyKHc6hbLGKYw0AuNLzz+yFt+WAyxd+YGs=";
  };

  dependencies = [
    torch
    numpy
  ];

  pythonImportsCheck = [ "snntorch" ];

  meta = {
    description = "Deep and online learning with spiking neural networks";
    license = lib.licenses.mit;
  };
}
