"""The environment a Chalice stage gives its Lambda functions, read from
.chalice/config.json, so the local runner and the tests configure the app
exactly as a deployed stage is configured."""
import json
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def stage_environment(stage="dev", project_dir=PROJECT_DIR):
    with open(Path(project_dir) / ".chalice" / "config.json") as config_file:
        config = json.load(config_file)
    environment = dict(config.get("environment_variables", {}))
    environment.update(config["stages"][stage].get("environment_variables", {}))
    return environment
