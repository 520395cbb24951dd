"""The semantic layer: Cube-syntax models loaded and checked, queries planned and compiled to SQL."""
