"""Launch files and parameter files of the LEGION deployment (installed from the repository's launch/)."""
