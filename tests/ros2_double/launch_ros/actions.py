class Node:
    def __init__(self, *, package, executable, name=None, namespace=None, parameters=None, remappings=None,
                 arguments=None, output="log", condition=None, **kwargs):
        self.package, self.executable, self.name = package, executable, name
        self.parameters, self.remappings, self.arguments = list(parameters or []), list(remappings or []), arguments
        self.output, self.condition = output, condition
