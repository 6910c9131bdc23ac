"""The template's helpers, one module per purpose: import from the module
(``from src.utils.errors import UserInputError``). Nothing is imported here, so a
light module (``src.utils.errors``) does not pull in Lightning."""
