"""Reading component.json and importing the Python module of a trigger or action."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any


class ComponentError(Exception):
    """component.json or a function module could not be used (message as the Node sailor words it)."""

    name = "Error"  # its error event's ``name`` (a start-up error), as Node's plain ``Error``


def component_root(component_path: str, cwd: str | None = None) -> Path:
    """``<cwd>/<COMPONENT_PATH>``: Node joins even an absolute-looking path onto the CWD."""
    base = Path(cwd or os.getcwd())
    return base / component_path.lstrip("/") if component_path else base


class ComponentReader:
    """component.json of one component root, with lazily imported and cached function modules."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        path = self.root / "component.json"
        try:
            with open(path, encoding="utf-8") as fh:
                self.definition: dict[str, Any] = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ComponentError(f"Failed to load component.json from {path}") from exc
        if str(self.root) not in sys.path:
            # the component's own packages (lib.…) must be importable from its modules
            sys.path.insert(0, str(self.root))
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.Lock()

    def find(self, name: str) -> dict[str, Any]:
        """The trigger or action entry named ``name`` (triggers first, like Node)."""
        for kind in ("triggers", "actions"):
            entry = (self.definition.get(kind) or {}).get(name)
            if isinstance(entry, dict):
                return entry
        raise ComponentError(f'Trigger or action "{name}" is not found in component.json!')

    def load(self, name: str) -> ModuleType:
        """Import (once) and return the module of the trigger or action ``name``."""
        with self._lock:
            module = self._modules.get(name)
            if module is None:
                main = self.find(name).get("main")
                if not isinstance(main, str) or not main:
                    raise ComponentError(f'Trigger or action "{name}" has no "main" in component.json')
                module = self._import(main, f"_eio_function_{name}")
                self._modules[name] = module
            return module

    def _import(self, main: str, module_name: str) -> ModuleType:
        path = (self.root / main).resolve()
        if not path.is_file():
            raise ComponentError(f"Failed to load file '{main}': no such file")
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ComponentError(f"Failed to load file '{main}': not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise ComponentError(
                f"Trigger or action is found, but can not be loaded. Please check if the file '{main}' "
                f"is correct. ({type(exc).__name__}: {exc})"
            ) from exc
        return module

    def load_verifier(self) -> ModuleType | None:
        """The verifyCredentials module: ``credentials.verifier`` if given, else ``verifyCredentials.py``."""
        creds = self.definition.get("credentials")
        verifier = creds.get("verifier") if isinstance(creds, dict) else None
        if isinstance(verifier, str) and verifier.endswith(".py"):
            return self._import(verifier, "_eio_verify_credentials")
        if (self.root / "verifyCredentials.py").is_file():
            return self._import("verifyCredentials.py", "_eio_verify_credentials")
        return None
