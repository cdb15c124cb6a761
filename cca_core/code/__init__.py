"""The code index: files of a tree under the allowed roots, cut into functions, classes and
methods by tree-sitter (windows of lines where no grammar applies), searched by meaning
and by words, per tenant."""
